"""A Toxiproxy-compatible HTTP API over chaosproxy's TCP proxies (`run --toxiproxy-api`).

`model` (Toxiproxy's JSON shapes, checked), `errors` (its error bodies), `state` (what each call
does to the TCP proxy registry), `translate` (a toxic as an ad-hoc TCP rule of the engine),
`app` (the aiohttp routes). See docs/toxiproxy.md.
"""
