"""The data plane, in two halves and what they share (Envoy's words): `downstream/` serves the
clients (listener, the per-request path, the faults' exchange and hook pipeline), `upstream/`
talks to the service (the `Upstream` interface, the request it gets, the keep-alive client),
`wire/` holds what both speak (hop-by-hop headers, write flow control). Imports point
downstream → upstream → wire, never back; tests/proxy/test_import_graph.py holds it."""
