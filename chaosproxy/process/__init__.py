"""Running a proxy process: the runtime that wires everything, startup (event loop, startup
errors) and logging."""
