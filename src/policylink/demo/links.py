"""The network between the demo's robots and its server: a real link where the kernel allows
one, the robot-side impairment wrapper otherwise.

A real link (`policylink.net.real_link`) puts the server in a network namespace behind a veth
pair and an impairment proxy, so Zenoh's handshakes, keep-alives and retransmissions cross the
delay, jitter and loss too; the wrapper (`client.links.impairment`) delays and drops whole
messages inside each robot and needs no privileges. `policylink demo` and `policylink eval`
both choose between them here and build the server's listen address, its command prefix and
the robots' endpoint from one `RobotNetwork`, so they run on the same path.
"""

from __future__ import annotations

from types import TracebackType

from policylink.client.links.impairment import NetworkImpairment
from policylink.net.impairment_proxy import Impairment, ProxyStats
from policylink.net.netpath import netpath_refusal
from policylink.net.real_link import RealLink

LINKS = ("auto", "real", "wrapper")
LOOPBACK = "127.0.0.1"


class LinkChoiceError(ValueError):
    """The options ask for a real link this machine cannot build, or combine badly."""


def real_link_wanted(link: str, impaired: bool, bandwidth_mbit: float | None) -> tuple[bool, str]:
    """Whether the robots go through a real link, and a note on why not when one was wanted.

    `auto` takes a real link only where something is impaired (a clean loopback needs none) and
    the kernel allows namespaces; `real` and a bandwidth cap insist on one.
    """
    if link not in LINKS:
        raise LinkChoiceError(f"{link!r} is not one of {', '.join(LINKS)}")
    wanted = link == "real" or bandwidth_mbit is not None or (link == "auto" and impaired)
    if not wanted or link == "wrapper":
        if bandwidth_mbit is not None:
            raise LinkChoiceError("a bandwidth cap needs --link real or auto")
        return False, ""
    refusal = netpath_refusal()
    if refusal is None:
        return True, ""
    if link == "real" or bandwidth_mbit is not None:
        raise LinkChoiceError(f"no real link on this machine: {refusal} (try --link wrapper)")
    return False, f"; no real link here: {refusal}"


def proxy_impairment(impairment: NetworkImpairment) -> Impairment:
    """The proxy's parameters for the wrapper's: the same round trip and ± jitter each way; the
    loss probability applies per TCP segment (paid as a retransmission) instead of per message."""
    return Impairment(impairment.rtt_ms, impairment.jitter_ms, impairment.loss)


class RobotNetwork:
    """What the robots reach the server through: `open()` builds a real link when `real`, and
    `impair()` changes the impairment between phases while the server behind it stays up."""

    def __init__(
        self,
        impairment: NetworkImpairment,
        server_port: int,
        *,
        real: bool,
        bandwidth_mbit: float | None = None,
    ) -> None:
        self.impairment = impairment
        self.server_port = server_port
        self.link = (
            RealLink(proxy_impairment(impairment), server_port, rate_mbit=bandwidth_mbit)
            if real
            else None
        )

    def open(self) -> RobotNetwork:
        if self.link is not None:
            self.link.open()
        return self

    @property
    def kind(self) -> str:
        """`real`, `wrapper` (robot side) or `loopback` (nothing added)."""
        if self.link is not None:
            return "real"
        return "wrapper" if self.impairment.active else "loopback"

    @property
    def server_host(self) -> str:
        """The address the server listens on: its end of the veth pair, or loopback."""
        return self.link.path.peer_address if self.link is not None else LOOPBACK

    def server_prefix(self) -> list[str]:
        """Put before the server's command line (it runs inside the link's namespace)."""
        return self.link.server_prefix() if self.link is not None else []

    @property
    def robot_endpoint(self) -> str:
        """The Zenoh endpoint the robots dial: the proxy's, or the server's own."""
        if self.link is not None:
            return self.link.robot_endpoint
        return f"tcp/{LOOPBACK}:{self.server_port}"

    @property
    def wrapper(self) -> NetworkImpairment:
        """What each robot's impairment wrapper adds: nothing when the link carries it."""
        return NetworkImpairment() if self.link is not None else self.impairment

    def describe(self) -> str:
        return self.link.describe() if self.link is not None else self.impairment.describe()

    def describe_path(self) -> str:
        """The path without the impairment, which may change between phases."""
        if self.link is not None:
            return f"real link: {self.link.path.describe()}"
        return "loopback, impairments added on the robots' side"

    def impair(self, impairment: NetworkImpairment) -> ProxyStats | None:
        """Takes `impairment` from now on; on a real link the proxy restarts with it (robots
        dial `robot_endpoint` anew) and the counters of the one it replaced are returned."""
        self.impairment = impairment
        if self.link is None:
            return None
        return self.link.reimpair(proxy_impairment(impairment))

    @property
    def stats(self) -> ProxyStats | None:
        """The counters of the last proxy that stopped (None on the wrapper)."""
        return self.link.stats if self.link is not None else None

    def close(self) -> ProxyStats | None:
        return self.link.close() if self.link is not None else None

    def __enter__(self) -> RobotNetwork:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
