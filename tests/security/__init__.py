"""Identity proven by the transport: mutual TLS and Zenoh access control keyed on certificates."""
