"""Configuration: YAML text to typed, frozen models; every error names file, line and key."""
