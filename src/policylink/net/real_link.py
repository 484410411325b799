"""A real link between robots and a server on one machine: namespace, veth, `tc`, proxy.

```
 robots (this namespace)                                       server (its own namespace)
   tcp/127.0.0.1:<proxy> ─► impairment proxy ─► veth, tbf cap ─► tcp/<peer address>:<port>
                            delay, jitter,       kernel queues,
                            loss as TCP sees it  TCP both ways
```

Everything Zenoh sends crosses it — its handshakes, keep-alives and lease, the observations
and the chunks — so a test or the demo sees the system on a bad network, not a wrapper's
imitation of one. The server runs inside the namespace (`server_prefix` before its command
line) and listens on `server_listen`; the robots dial `robot_endpoint`.
"""

from __future__ import annotations

from types import TracebackType

from policylink.net.impairment_proxy import Impairment, ProxyStats
from policylink.net.netpath import NetPath
from policylink.net.proxy_process import ProxyProcess


class RealLink:
    """Builds the path on `open()` (or entering `with`) and tears all of it down on `close()`."""

    def __init__(
        self,
        impairment: Impairment,
        server_port: int,
        *,
        rate_mbit: float | None = None,
        queue_ms: float = 100.0,
        seed: int = 0,
    ) -> None:
        self.impairment = impairment
        self.server_port = server_port
        self.path = NetPath(rate_mbit, queue_ms)
        self.proxy: ProxyProcess | None = None
        self.seed = seed
        self.stats: ProxyStats | None = None

    def open(self) -> RealLink:
        self.path.open()
        try:
            self.proxy = ProxyProcess(
                (self.path.peer_address, self.server_port), self.impairment, seed=self.seed
            ).start()
        except BaseException:
            self.path.close()
            raise
        return self

    @property
    def server_listen(self) -> str:
        """The Zenoh endpoint the server listens on, inside the namespace."""
        return f"tcp/{self.path.peer_address}:{self.server_port}"

    @property
    def robot_endpoint(self) -> str:
        """The Zenoh endpoint robots dial: the proxy's."""
        if self.proxy is None:
            raise RuntimeError("the link is not open: call open() first")
        return self.proxy.endpoint

    def server_prefix(self) -> list[str]:
        """Put before the server's command line to start it inside the namespace."""
        return self.path.exec_prefix()

    def describe(self) -> str:
        return (
            f"real link: impairment proxy ({self.impairment.describe()}) → {self.path.describe()}"
        )

    def reimpair(self, impairment: Impairment) -> ProxyStats | None:
        """Swaps the proxy for one with `impairment`, keeping the path (and the server behind it)
        up; returns the replaced proxy's counters. Robots connected through it are cut off and
        must dial `robot_endpoint` again (its port changes)."""
        if self.proxy is None:
            raise RuntimeError("the link is not open: call open() first")
        self.stats = self.proxy.stop()
        self.proxy = None
        self.impairment = impairment
        self.proxy = ProxyProcess(
            (self.path.peer_address, self.server_port), impairment, seed=self.seed
        ).start()
        return self.stats

    def close(self) -> ProxyStats | None:
        """Stops the proxy and deletes the namespace (and anything still running in it)."""
        if self.proxy is not None:
            self.stats = self.proxy.stop()
        self.path.close()
        return self.stats

    def __enter__(self) -> RealLink:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
