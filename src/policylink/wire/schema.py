"""Schema versions: evolution is additive inside a version; a layout change bumps it.

2: the key space names the robot and the replica in every per-robot key (see `wire.keys`); a
schema-1 peer addresses keys no schema-2 peer declares, so the two cannot meet at all.
"""

from __future__ import annotations

from policylink.wire.errors import SchemaError

SCHEMA_VERSION = 2
SCHEMA_MIN = 2
SCHEMA_MAX = 2


def negotiate_schema(
    client_min: int, client_max: int, server_min: int = SCHEMA_MIN, server_max: int = SCHEMA_MAX
) -> int:
    """Highest version both sides speak, or `SchemaError` saying which side must upgrade."""
    if client_min > client_max:
        raise SchemaError(f"client schema range [{client_min}, {client_max}] is empty")
    if server_min > server_max:
        raise SchemaError(f"server schema range [{server_min}, {server_max}] is empty")
    low, high = max(client_min, server_min), min(client_max, server_max)
    if low > high:
        side = "client" if client_max < server_min else "server"
        raise SchemaError(
            f"no common schema version: client speaks [{client_min}, {client_max}], server "
            f"speaks [{server_min}, {server_max}]; upgrade the {side}"
        )
    return high
