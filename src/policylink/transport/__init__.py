"""Network surfaces: Zenoh (native protocol) and the OpenPI WebSocket protocol."""
