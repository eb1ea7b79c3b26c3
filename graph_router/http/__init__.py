"""graph-router's HTTP data plane: an HTTP/1.1 server and a keep-alive client pool on asyncio + llhttp."""
