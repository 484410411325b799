"""The server's network surfaces over `ServerCore`: Zenoh (native protocol) and OpenPI WebSocket.

A surface turns bytes into calls on the core and replies back into bytes; it knows nothing about
policies. Its settings are plain data beside the manifest (`server.openpi_settings`, the
manifest's `zenoh:` block), so a manifest validates without importing zenoh or websockets.
"""
