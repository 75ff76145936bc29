"""TCP proxies: byte-exact relays of any protocol beside the HTTP listener, with byte-level
faults driven by the same engine, scenarios and rules as HTTP (docs/tcp.md).

`registry.py` holds the named proxies (added, changed and removed at runtime), `listener.py`
one proxy's listening socket and its connections, `relay.py` one relayed connection, `pump.py`
one direction of it while faults shape the bytes, `plan.py` what faults ask of a connection,
`faults/` one file per TCP fault (a registry apart from the HTTP faults')."""
