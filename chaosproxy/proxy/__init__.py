"""The data plane: aiohttp server and upstream client; turns decisions into bytes on the wire."""
