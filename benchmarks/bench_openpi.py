"""Round-trip overhead (RTT minus forward) of one observation, three ways, in one run.

One server process-equivalent (`ServerApp` in this process, Zenoh and OpenPI surfaces both on)
serves the built-in transformer; the clients run in a separate process so their CPU never
shows up as server time. Every client sends the *same* observation (LIBERO-sized: two 224x224
cameras, an 8-value state), closed loop, one request in flight:

- native Zenoh with `ZenohLink`, images raw and as JPEG q90;
- policylink's OpenPI endpoint with the stock openpi-client (`WebsocketClientPolicy`), and
  with policylink's own `OpenPILink`;
- in-process: preprocess, forward and postprocess called directly (no network, no codec).

RTT is measured by the client from before encoding to after decoding. The forward is what
the server reports for that very request (`inference_ms` / `server_timing.infer_ms`), so
RTT minus forward is everything else: encode, network, queue hand-off, decode, checks,
processors, reply encode.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import numpy as np

from benchmarks.frames import camera_frame
from benchmarks.round_trips import one_in_flight
from policylink.net.ports import free_port

SIZE = 224
STATE_DIM = 8
CAMERAS = ("front", "wrist")
PRESET = "small"
WARMUP = 10


def the_observation() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    state = np.random.default_rng(0).standard_normal(STATE_DIM).astype(np.float32)
    return state, {name: camera_frame(i, SIZE, SIZE) for i, name in enumerate(CAMERAS)}


def summarise(rtt_ms: list[float], forward_ms: list[float]) -> dict[str, float]:
    rtt, forward = np.asarray(rtt_ms), np.asarray(forward_ms)
    overhead = rtt - forward
    return {
        "requests": len(rtt),
        "rtt_p50_ms": float(np.percentile(rtt, 50)),
        "forward_p50_ms": float(np.percentile(forward, 50)),
        "overhead_p50_ms": float(np.percentile(overhead, 50)),
        "overhead_p90_ms": float(np.percentile(overhead, 90)),
    }


def native_round_trips(
    endpoint: str, action_names: list[str], jpeg_quality: int, requests: int
) -> dict[str, float]:
    from policylink import wire
    from policylink.client.links.zenoh import ZenohLink
    from policylink.net.zenoh_settings import ZenohSettings

    state, images = the_observation()
    cameras = [wire.CameraSpec(name, SIZE, SIZE) for name in CAMERAS]
    client_id = f"bench-native-{jpeg_quality}"
    transport = ZenohLink(
        ZenohSettings(mode="peer", connect=[endpoint]), client_id, jpeg_quality=jpeg_quality
    )
    request = wire.SessionOpen(client_id, action_names, STATE_DIM, cameras)
    obs = wire.Observation(state=state, images=images)
    return summarise(*one_in_flight(transport, request, obs, requests, WARMUP))


def openpi_client_round_trips(url: str, requests: int) -> dict[str, float]:
    """The stock openpi-client, exactly as LIBERO/DROID eval scripts use it."""
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    state, images = the_observation()
    obs = {
        "observation/state": state,
        "observation/image": images["front"],
        "observation/wrist_image": images["wrist"],
        "prompt": "pick up the cup",
    }
    policy = WebsocketClientPolicy(url)
    rtt, forward = [], []
    try:
        for index in range(WARMUP + requests):
            started = time.perf_counter()
            reply = policy.infer(obs)
            elapsed_ms = (time.perf_counter() - started) * 1e3
            if index >= WARMUP:
                rtt.append(elapsed_ms)
                forward.append(reply["server_timing"]["infer_ms"])
    finally:
        policy._ws.close()
    return summarise(rtt, forward)


def policylink_openpi_round_trips(
    url: str, action_names: list[str], requests: int
) -> dict[str, float]:
    from policylink import wire
    from policylink.client.links.openpi import OpenPILink

    state, images = the_observation()
    cameras = [wire.CameraSpec(name, SIZE, SIZE) for name in CAMERAS]
    request = wire.SessionOpen("bench-openpi", action_names, STATE_DIM, cameras)
    obs = wire.Observation(state=state, images=images, task="pick up the cup")
    return summarise(*one_in_flight(OpenPILink(url), request, obs, requests, WARMUP))


def clients_main(out: Any, endpoint: str, url: str, action_names: list[str], requests: int) -> None:
    """Child process: every client mode in turn, against the same server."""
    out.put(
        {
            "native zenoh, raw images": native_round_trips(endpoint, action_names, 0, requests),
            "native zenoh, JPEG q90": native_round_trips(endpoint, action_names, 90, requests),
            "openpi endpoint, openpi-client": openpi_client_round_trips(url, requests),
            "openpi endpoint, policylink client": policylink_openpi_round_trips(
                url, action_names, requests
            ),
        }
    )


def in_process(policy: Any, requests: int) -> dict[str, float]:
    from policylink.policy.base import ChunkBatch
    from policylink.wire import Observation

    state, images = the_observation()
    obs = Observation(state=state, images=images, task="pick up the cup")
    processor = policy.make_processor()
    rtt, forward = [], []
    for index in range(WARMUP + requests):
        started = time.perf_counter()
        sample = processor.preprocess(obs)
        forward_started = time.perf_counter()
        chunks = policy.predict_chunk(ChunkBatch([sample]))
        forward_done = time.perf_counter()
        processor.postprocess(np.asarray(chunks)[0])
        done = time.perf_counter()
        if index >= WARMUP:
            rtt.append((done - started) * 1e3)
            forward.append((forward_done - forward_started) * 1e3)
    return summarise(rtt, forward)


def run(quick: bool = False) -> dict[str, Any]:
    from policylink.server.app import ServerApp
    from policylink.server.manifest import Manifest

    requests = 30 if quick else 300
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    manifest = Manifest.from_data(
        {
            "policy": {
                "kind": "transformer",
                "preset": PRESET,
                "params": {
                    "state_dim": STATE_DIM,
                    "cameras": [{"name": c, "height": SIZE, "width": SIZE} for c in CAMERAS],
                },
            },
            "model_id": "bench-openpi",
            "zenoh": {"listen": [endpoint]},
            "openpi": {"enabled": True, "port": 0, "key_map": "libero"},
            "warmup_inferences": 5,
        }
    )
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    with ServerApp(manifest) as app:
        assert app.openpi is not None
        url = f"ws://127.0.0.1:{app.openpi.port}"
        action_names = list(app.capabilities.action_names)
        clients = context.Process(
            target=clients_main,
            args=(out, endpoint, url, action_names, requests),
            name="bench-openpi-clients",
        )
        clients.start()
        try:
            rows = out.get(timeout=900)
        finally:
            clients.join(60)
            if clients.is_alive():
                clients.kill()
        assert app.policy is not None
        rows = {"in-process (no network)": in_process(app.policy, requests), **rows}
    print_table(rows)
    return {
        "preset": PRESET,
        "cameras": f"{len(CAMERAS)} x {SIZE}x{SIZE} RGB",
        "state_dim": STATE_DIM,
        "modes": rows,
    }


def print_table(rows: dict[str, dict[str, float]]) -> None:
    base = rows["in-process (no network)"]["overhead_p50_ms"]
    print(
        f"{'mode':<36} {'RTT p50':>9} {'forward':>9} {'overhead p50':>13} "
        f"{'p90':>7} {'overhead/forward':>17}"
    )
    for name, row in rows.items():
        ratio = row["overhead_p50_ms"] / row["forward_p50_ms"]
        print(
            f"{name:<36} {row['rtt_p50_ms']:>7.2f}ms {row['forward_p50_ms']:>7.2f}ms "
            f"{row['overhead_p50_ms']:>11.2f}ms {row['overhead_p90_ms']:>5.2f}ms "
            f"{ratio:>16.2f}x"
        )
    print(f"(in-process overhead p50 {base:.3f} ms: preprocess + postprocess only)")
