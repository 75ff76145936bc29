"""What both halves of the proxy share on the wire: hop-by-hop header filtering (`headers`) and
write flow control (`flow`). Imports nothing else of the proxy."""
