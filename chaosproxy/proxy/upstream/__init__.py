"""The upstream half of the proxy: the `Upstream` interface (`interface`), the request the
upstream gets (`forward`) and the client that sends it: `client` (writes requests), `pool` (the
keep-alive pool), `connection` (one connection), `response` (the exchange it carries), `head`
(the response head scan), `tunnel` (an upgraded connection), `connect` (TLS, connect errors,
readiness). Imports `proxy.wire`, never `proxy.downstream`."""
