"""Network plumbing both sides share: Zenoh settings and sessions with every QoS choice, free ports.

Below the server surfaces and the client links, above nothing but the standard library and zenoh;
it knows no message, policy or session.
"""
