"""Policy server cost: per-request overhead outside the forward, and throughput vs sessions.

The server runs in this process exactly as `policylink serve` runs it (audit log on); the robots
run in a separate process over real Zenoh on loopback, so their CPU never shows up as server
time. Each robot streams closed-loop: it publishes its next observation the moment a chunk
arrives. Observation bodies are encoded once up front; the server still decodes every one.

Per request the server reports (audit line): `inference_ms`, the chunk call alone, and
`overhead_ms`, the worker's time outside it (decode, checks, processors, encode, publish).
`handoff` is the queue wait with one session: the deposit-to-worker wake-up, also overhead.
Measured side by side in the same run: the JPEG decode floor (two 480x640 q90 frames decoded
alone) and the forward, so the overhead is read against both; and the same 4-session load with
torch on one intra-op thread (`torch_threads: 1`, the server cases' setting) and on one per
core (torch's default), whose threads compete with decoding and Zenoh on a small CPU.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import statistics
import threading
import time
from functools import partial
from typing import Any

import numpy as np

from benchmarks.audit import collect_audit
from benchmarks.frames import camera_frame
from benchmarks.timing import percentile, timed_ms
from policylink import wire
from policylink.net.ports import free_port

HEIGHT, WIDTH = 480, 640
STATE_DIM = 14
CAMERAS = ("front", "wrist")
JPEG_QUALITY = 90
WARMUP_REQUESTS = 20


def observation_body(cameras: int) -> bytes:
    obs = wire.Observation(
        state=np.random.default_rng(0).standard_normal(STATE_DIM).astype(np.float32),
        images={name: camera_frame(i, HEIGHT, WIDTH) for i, name in enumerate(CAMERAS[:cameras])},
    )
    return wire.encode_observation(obs, JPEG_QUALITY)


REPLICA = "bench-0"
STALL_RESEND_S = 1.0
"""A robot whose observation or chunk was dropped under load asks again after this long."""


class ClosedLoopRobot:
    """Publishes its next observation the moment the chunk for its latest one arrives."""

    def __init__(self, publisher: Any, body: bytes, epoch: int, requests: int) -> None:
        self.publisher, self.body, self.epoch, self.requests = publisher, body, epoch, requests
        # Guards seq, last_send_ns, rtts and done: the chunk callback and the stall watchdog
        # both send.
        self.lock = threading.Lock()
        self.seq = 0
        self.last_send_ns = 0
        self.resends = 0
        self.rtts: list[float] = []
        self.done = threading.Event()

    def send(self, resend: bool = False) -> None:
        with self.lock:
            if not resend:
                self.seq += 1
            else:
                self.resends += 1
            self.last_send_ns = time.monotonic_ns()
            header = wire.Header(
                wire.SCHEMA_VERSION,
                wire.MsgType.OBSERVATION,
                seq_id=self.seq,
                client_mono_ns=self.last_send_ns,
                session_epoch=self.epoch,
            )
        self.publisher.put(self.body, attachment=wire.pack_header(header))

    def on_chunk(self, sample: Any) -> None:
        header = wire.unpack_header(sample.attachment.to_bytes())
        with self.lock:
            if header.seq_id != self.seq or self.done.is_set():
                return  # the answer to a request already answered (after a resend)
            self.rtts.append((time.monotonic_ns() - header.client_mono_ns) / 1e6)
            if self.seq >= self.requests:
                self.done.set()
                return
        self.send()

    def stalled(self) -> bool:
        with self.lock:
            idle_s = (time.monotonic_ns() - self.last_send_ns) / 1e9
        return not self.done.is_set() and idle_s > STALL_RESEND_S


def robots_main(
    endpoint: str,
    namespace: tuple[str, str, str],
    replica: str,
    sessions: int,
    requests: int,
    cameras: int,
) -> dict[str, Any]:
    """Child process: `sessions` closed-loop robots, each sending `requests` observations."""
    from policylink.net.zenoh_session import (
        declare_observation_publisher,
        open_zenoh_session,
        query,
    )
    from policylink.net.zenoh_settings import ZenohSettings

    ns = wire.Namespace.of(*namespace)
    body = observation_body(cameras)
    zsession = open_zenoh_session(ZenohSettings(mode="peer", connect=[endpoint]))
    robots: list[ClosedLoopRobot] = []
    keep: list[Any] = []
    for index in range(sessions):
        client = f"robot-{index}"
        caps = wire.decode_message(
            wire.MsgType.STATUS,
            query(
                zsession,
                ns.status(replica),
                wire.encode_message(wire.StatusRequest()),
                wire.pack_header(wire.Header(wire.SCHEMA_VERSION, wire.MsgType.STATUS_REQUEST)),
                10.0,
            )[0].ok.payload.to_bytes(),
        ).capabilities
        request = wire.SessionOpen(client, caps.action_names, caps.state_dim, caps.cameras)
        ack = wire.decode_message(
            wire.MsgType.SESSION_ACK,
            query(
                zsession,
                ns.session(client, replica),
                wire.encode_message(request),
                wire.pack_header(wire.Header(wire.SCHEMA_VERSION, wire.MsgType.SESSION_OPEN)),
                10.0,
            )[0].ok.payload.to_bytes(),
        )
        publisher = declare_observation_publisher(zsession, ns.obs(client, replica))
        robot = ClosedLoopRobot(publisher, body, ack.session_epoch, requests)
        keep.extend(
            [publisher, zsession.declare_subscriber(ns.action(client, replica), robot.on_chunk)]
        )
        robots.append(robot)
    started = time.perf_counter()
    for robot in robots:
        robot.send()
    deadline = time.monotonic() + 300
    while not all(r.done.is_set() for r in robots) and time.monotonic() < deadline:
        time.sleep(0.05)
        for robot in robots:
            if robot.stalled():
                robot.send(resend=True)
    elapsed = time.perf_counter() - started
    zsession.close()
    return {
        "finished": all(r.done.is_set() for r in robots),
        "elapsed_s": elapsed,
        "rtt_ms": [rtt for r in robots for rtt in r.rtts],
        "resends": sum(r.resends for r in robots),
    }


def _robots_entry(out: Any, *args: Any) -> None:
    out.put(robots_main(*args))


def run_case(
    name: str, *, preset: str, cameras: int, sessions: int, requests: int, threads: int = 1
) -> dict[str, Any]:
    from policylink.server.app import ServerApp
    from policylink.server.manifest import Manifest

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    manifest = Manifest.from_data(
        {
            "policy": {
                "kind": "transformer",
                "preset": preset,
                "params": {
                    "state_dim": STATE_DIM,
                    "cameras": [
                        {"name": c, "height": HEIGHT, "width": WIDTH} for c in CAMERAS[:cameras]
                    ],
                },
            },
            "model_id": "bench",
            "replica_id": REPLICA,
            "torch_threads": threads,
            "max_sessions": max(sessions, 1),
            "zenoh": {"listen": [endpoint]},
            "warmup_inferences": 5,
        }
    )
    out: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    with collect_audit() as collector, ServerApp(manifest):
        robots = multiprocessing.get_context("spawn").Process(
            target=_robots_entry,
            args=(
                out,
                endpoint,
                ("bench", "main", "default"),
                REPLICA,
                sessions,
                requests,
                cameras,
            ),
            name="bench-robots",
            daemon=True,
        )
        robots.start()
        try:
            client = out.get(timeout=600)
        except queue.Empty:
            client = {"finished": False, "elapsed_s": float("nan"), "rtt_ms": [], "resends": 0}
        robots.join(60)
    lines = collector.answered(skip=WARMUP_REQUESTS)
    overhead = [line["overhead_ms"] for line in lines]
    forward = [line["inference_ms"] for line in lines]
    wait = [line["queue_wait_ms"] for line in lines]
    served = len(collector.lines)
    print(
        f"  {name}: {sessions} session(s), {served} requests served, "
        f"{client['resends']} resent after a drop",
        flush=True,
    )
    return {
        "case": name,
        "preset": preset,
        "cameras": cameras,
        "sessions": sessions,
        "torch_threads": threads,
        "requests": served,
        "errors": sum(1 for line in collector.lines if line["outcome"] != "ok"),
        "finished": client["finished"],
        "resends": client["resends"],
        "throughput_rps": served / client["elapsed_s"] if client["elapsed_s"] else 0.0,
        "forward_p50_ms": percentile(forward, 50),
        "overhead_p50_ms": percentile(overhead, 50),
        "overhead_p99_ms": percentile(overhead, 99),
        "queue_wait_p50_ms": percentile(wait, 50),
        "queue_wait_p99_ms": percentile(wait, 99),
        "rtt_p50_ms": percentile(client["rtt_ms"], 50),
        "rtt_p99_ms": percentile(client["rtt_ms"], 99),
    }


def jpeg_decode_floor_ms(repeats: int) -> float:
    """Two frames decoded alone: the part of the overhead no server can avoid."""
    encoded = [wire.encode_image(camera_frame(i, HEIGHT, WIDTH), JPEG_QUALITY) for i in range(2)]

    def decode_both() -> None:
        for image in encoded:
            wire.decode_image(image)

    return statistics.median(timed_ms(decode_both, repeats))


def forward_ms_by_preset(repeats: int, threads: int) -> dict[str, dict[str, float]]:
    """Chunk call of each transformer preset, state only and with two cameras. The minimum is
    reported next to the median because it approximates an idle machine when others share it."""
    import torch

    from policylink.policy.base import ChunkBatch, dummy_observation
    from policylink.policy.registry import PolicyConfig, build_policy
    from policylink.policy.transformer import PRESETS

    torch.set_num_threads(threads)
    two = [{"name": c, "height": HEIGHT, "width": WIDTH} for c in CAMERAS]
    table: dict[str, dict[str, float]] = {}
    for preset in PRESETS:
        table[preset] = {}
        for label, cameras in (("state_only", []), ("two_cameras", two)):
            policy = build_policy(
                PolicyConfig(preset=preset, params={"state_dim": STATE_DIM, "cameras": cameras})
            )
            sample = policy.make_processor().preprocess(dummy_observation(policy.spec))
            batch = ChunkBatch([sample])
            for _ in range(3):
                policy.predict_chunk(batch)
            samples = timed_ms(partial(policy.predict_chunk, batch), repeats)
            table[preset][label] = statistics.median(samples)
            table[preset][f"{label}_min"] = min(samples)
    return table


def run(quick: bool = False) -> dict[str, Any]:
    requests = 60 if quick else 600
    cores = os.cpu_count() or 1
    cases = [
        ("state only", "tiny", 0, 1, 1),
        ("two JPEG cameras", "tiny", 2, 1, 1),
        ("two JPEG cameras", "tiny", 2, 4, 1),
        ("two JPEG cameras", "tiny", 2, 4, cores),
    ]
    sweep = [] if quick else [1, 2, 4, 8]
    results = [
        run_case(name, preset=preset, cameras=cams, sessions=n, requests=requests, threads=t)
        for name, preset, cams, n, t in cases
    ]
    throughput = [
        run_case("throughput", preset="small", cameras=2, sessions=n, requests=requests // n)
        for n in sweep
    ]
    floor = jpeg_decode_floor_ms(20 if quick else 200)
    presets = forward_ms_by_preset(3 if quick else 20, threads=cores)
    print_tables(results, throughput, floor, presets)
    return {
        "overhead": results,
        "throughput": throughput,
        "jpeg_decode_floor_ms": floor,
        "forward_ms_by_preset": presets,
    }


def print_tables(
    results: list[dict], throughput: list[dict], floor: float, presets: dict[str, dict[str, float]]
) -> None:
    print(f"JPEG decode floor, two 480x640 q90 frames: {floor:.2f} ms")
    print()
    print(f"{'preset':<8} {'state only':>16} {'two cameras':>16}   (forward ms: median / min)")
    for name, row in presets.items():
        print(
            f"{name:<8} {row['state_only']:>8.2f} / {row['state_only_min']:<5.2f} "
            f"{row['two_cameras']:>8.2f} / {row['two_cameras_min']:<5.2f}"
        )
    print()
    head = (
        f"{'case':<18} {'sess':>4} {'thr':>3} {'fwd p50':>8} {'ovh p50':>8} {'ovh p99':>8} "
        f"{'p99/p50':>8} {'handoff':>8} {'ovh/fwd':>8} {'ovh/jpeg':>8} {'rtt p50':>8}"
    )
    print(head)
    for r in results:
        jpeg = r["overhead_p50_ms"] / floor if r["cameras"] else float("nan")
        print(
            f"{r['case']:<18} {r['sessions']:>4} {r['torch_threads']:>3} "
            f"{r['forward_p50_ms']:>8.2f} "
            f"{r['overhead_p50_ms']:>8.3f} {r['overhead_p99_ms']:>8.3f} "
            f"{r['overhead_p99_ms'] / r['overhead_p50_ms']:>8.2f} "
            f"{r['queue_wait_p50_ms'] if r['sessions'] == 1 else float('nan'):>8.3f} "
            f"{r['overhead_p50_ms'] / r['forward_p50_ms']:>8.3f} {jpeg:>8.2f} "
            f"{r['rtt_p50_ms']:>8.2f}"
        )
    if throughput:
        print()
        print(
            f"{'sessions':>8} {'req/s':>8} {'fwd p50':>8} {'wait p50':>9} {'wait p99':>9} "
            f"{'rtt p50':>8} {'rtt p99':>8}"
        )
        for r in throughput:
            print(
                f"{r['sessions']:>8} {r['throughput_rps']:>8.1f} {r['forward_p50_ms']:>8.2f} "
                f"{r['queue_wait_p50_ms']:>9.2f} {r['queue_wait_p99_ms']:>9.2f} "
                f"{r['rtt_p50_ms']:>8.2f} {r['rtt_p99_ms']:>8.2f}"
            )
