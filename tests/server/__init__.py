"""Policy server tests: real Zenoh sessions on loopback, real torch policies."""
