"""The server's network surfaces over `ServerCore`: Zenoh (native protocol) and OpenPI WebSocket.

Each surface owns its settings block (`openpi_settings` is free of websockets, so the manifest
can validate it anywhere) and turns bytes into calls on the core and replies back into bytes.
"""
