"""`chaosproxy run --workers N`: several proxy processes on one port, driven as one proxy.

`supervisor` (the process `run` becomes) reserves the port, starts the workers and serves the
public admin API; `child` is a worker (a whole `Runtime`); `relay` is the admin API fanned out to
the workers' private admins; `merge` turns their answers into one proxy's. See
docs/operations.md ("Several worker processes").
"""
