"""A minimal OpenPI-protocol server, as openpi's `serve_policy.py` behaves on the wire.

Metadata on connect, one msgpack reply per frame, and on a policy exception a traceback as a
text frame followed by close code 1011. It knows nothing of policylink: it is what
policylink's client must be able to drive.
"""

from __future__ import annotations

import asyncio
import threading
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import websockets
from openpi_client import msgpack_numpy
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import CloseCode

Infer = Callable[[dict[str, Any]], dict[str, Any]]


def libero_echo(horizon: int = 4) -> Infer:
    """`actions[t] = observation/state + t`; fails on a state starting with 666."""

    def infer(obs: dict[str, Any]) -> dict[str, Any]:
        state = np.asarray(obs["observation/state"], dtype=np.float64)
        if state[0] == 666:
            raise ValueError("the stock policy refuses 666")
        assert obs["observation/image"].shape[-1] == 3
        return {"actions": state[None, :] + np.arange(horizon)[:, None]}

    return infer


class StockServer:
    """Owns one event-loop thread; `start()` returns once it listens, `stop()` joins it."""

    def __init__(self, infer: Infer, metadata: dict[str, Any] | None = None) -> None:
        self.infer, self.metadata = infer, metadata or {}
        self.frames: list[dict[str, Any]] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="stock")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> StockServer:
        self._thread.start()
        assert self._ready.wait(10), "stock server did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0, compression=None, max_size=None) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def _handle(self, ws: ServerConnection) -> None:
        packer = msgpack_numpy.Packer()
        await ws.send(packer.pack(self.metadata))
        try:
            async for message in ws:
                obs = msgpack_numpy.unpackb(message)
                self.frames.append(obs)
                try:
                    reply = self.infer(obs)
                except Exception:
                    await ws.send(traceback.format_exc())
                    await ws.close(CloseCode.INTERNAL_ERROR, "Internal server error")
                    return
                reply["server_timing"] = {"infer_ms": 1.5}
                await ws.send(packer.pack(reply))
        except websockets.ConnectionClosed:
            return
