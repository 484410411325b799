"""The client's links to a server: Zenoh (native), OpenPI WebSocket, and an impairment wrapper.

Each implements `policylink.client.link.ClientLink` and owns its settings; engines only ever see
that interface. `make_link` is the one place a config turns into a network stack.
"""

from __future__ import annotations

from policylink.client.config import ClientConfig
from policylink.client.link import ClientLink


def make_link(config: ClientConfig) -> ClientLink:
    """The link for `config`: a `ws://` or `wss://` endpoint is an OpenPI server (policylink's or
    a stock one); anything else is a Zenoh endpoint."""
    if config.endpoint.startswith(("ws://", "wss://")):
        from policylink.client.links.openpi import OpenPILink

        return OpenPILink.from_config(config)
    from policylink.client.links.zenoh import ZenohLink

    return ZenohLink.from_config(config)
