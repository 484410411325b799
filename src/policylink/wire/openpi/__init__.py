"""OpenPI's formats: msgpack-numpy, the frames of its WebSocket protocol, and key maps.

Formats only, like the rest of `wire`: the server surface and the client link that speak the
protocol live in `server.surfaces.openpi` and `client.links.openpi`.
"""
