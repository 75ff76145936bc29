"""The data plane: its own HTTP/1.1 listener and upstream clients; turns decisions into bytes on
the wire."""
