"""The client-facing half of the proxy: `listener` (HTTP/1.1 on httptools, one protocol per
client connection), `request` (the request view and body), `limits` (what a client may send and
hold), `core` (`ProxyCore`: decide, faults, forward, events), `exchange` (the faults' `Exchange`
and the pipeline's `Wire`), `pipeline` (the hook pipeline), `responses` (the bytes of the proxy's
own answers), `websocket` (upgrades), `header_faults` (per-request fault headers)."""
