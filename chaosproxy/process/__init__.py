"""Running a proxy process: the runtime that wires everything and startup (event loop, startup
errors)."""
