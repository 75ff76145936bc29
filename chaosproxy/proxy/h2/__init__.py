"""HTTP/2 and gRPC: the client-facing HTTP/2 connection the listener hands a preface to
(server) or an `Upgrade: h2c` request turns into (upgrade), the per-stream path (core) and the
faults' exchange over a stream (exchange), forwarding (forward) over the HTTP/1.1 upstream
client or the HTTP/2 one (client), and the frames, streams and headers both sides share
(connection, stream, headers). docs/http2.md."""
