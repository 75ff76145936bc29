"""Files Locust loads in its own process (`-f`): never import them from chaosproxy itself."""
