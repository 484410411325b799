"""Chaos: servers and routers killed, hung, swapped and drained under robots in their own
processes; every robot's executed actions audited, every `get_action()` timed."""
