"""A small LeRobot ACT served by policylink: its forward, and what policylink adds around it.

Runs in the LeRobot environment only (`make setup-lerobot`, then
`.venv-lerobot/bin/python -m benchmarks lerobot`). The checkpoint is the tests' small ACT
(resnet18 backbone, 48x64 camera, 6 joints, chunk 10), built from config with hand-made
statistics, so nothing is downloaded.

Measured side by side in one run:

- forward: LeRobot's `predict_action_chunk` alone on a preprocessed batch, at batch 1 and 4;
- LeRobot step: what running the policy in-process with LeRobot costs per chunk (observation
  to tensors, preprocessor, forward, postprocessor);
- adapter step: the same through policylink's `lerobot` kind (session processor, batch-shaped
  chunk call, postprocess), at batch 1 and 4 (rows of four sessions collated in one call);
- served: `policylink serve`'s server in this process, a real client (`SyncEngine`, JPEG q90)
  in another, over Zenoh on loopback, one request at a time. The server's audit lines give the
  forward and the worker's time outside it; the client times the round trip from its blocking
  `get_action` (encode, network, server, decode, merge).
"""

from __future__ import annotations

import multiprocessing
import queue
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.audit import collect_audit
from benchmarks.timing import percentile
from policylink.net.ports import free_port

WARMUP = 10


def interleaved_medians(steps: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median ms per step, timing one call of every step per round: load from other processes
    then hits all steps alike, so their ratios stay fair on a busy machine."""
    for step in steps.values():
        for _ in range(WARMUP):
            step()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in samples.items()}


def in_process(path: Path, repeats: int) -> dict[str, float]:
    import torch
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    from lerobot.policies.utils import prepare_observation_for_inference

    from policylink.policy.base import ChunkBatch
    from policylink.policy.registry import PolicyConfig, build_policy
    from tests.lerobot.checkpoints import ACTION_NAMES, CAMERA
    from tests.lerobot.reference import observation

    observations = [observation(seed) for seed in range(4)]
    config = PreTrainedConfig.from_pretrained(path)
    policy = get_policy_class(config.type).from_pretrained(path, config=config)
    preprocessor, postprocessor = make_pre_post_processors(config, pretrained_path=str(path))

    def lerobot_batch(obs: Any) -> dict:
        frame = {"observation.state": obs.state, f"observation.images.{CAMERA}": obs.images[CAMERA]}
        return preprocessor(prepare_observation_for_inference(frame, torch.device("cpu")))

    one = lerobot_batch(observations[0])
    four = {
        key: torch.cat([lerobot_batch(obs)[key] for obs in observations])
        for key in ("observation.state", f"observation.images.{CAMERA}")
    }

    def lerobot_step() -> None:
        postprocessor(policy.predict_action_chunk(lerobot_batch(observations[0])))

    served = build_policy(
        PolicyConfig(kind="lerobot", path=str(path), params={"action_names": ACTION_NAMES})
    )
    processors = [served.make_processor() for _ in observations]

    def adapter_step(rows: int) -> None:
        samples = [processors[i].preprocess(observations[i]) for i in range(rows)]
        chunks = served.predict_chunk(ChunkBatch(samples))
        for i in range(rows):
            processors[i].postprocess(chunks[i])

    with torch.no_grad():
        return interleaved_medians(
            {
                "forward_b1_ms": lambda: policy.predict_action_chunk(one),
                "forward_b4_ms": lambda: policy.predict_action_chunk(four),
                "lerobot_step_b1_ms": lerobot_step,
                "adapter_step_b1_ms": lambda: adapter_step(1),
                "adapter_step_b4_ms": lambda: adapter_step(4),
            },
            repeats,
        )


def client_main(endpoint: str, requests: int, out: Any) -> None:
    """Child process: one robot asking for a chunk, waiting for it, asking again."""
    from policylink.client import ClientConfig, SyncEngine
    from tests.lerobot.reference import observation
    from tests.lerobot.serving import LAYOUT

    config = ClientConfig(endpoint=endpoint, client_id="bench-arm", rtc=False, fps=30.0)
    obs = observation(0)
    rtts = []
    with SyncEngine(config, LAYOUT) as engine:
        for index in range(WARMUP + requests):
            engine.notify_observation(obs)
            start = time.perf_counter()
            first = engine.get_action()
            elapsed = (time.perf_counter() - start) * 1e3
            if first is None:
                break
            if index >= WARMUP:
                rtts.append(elapsed)
            while len(engine.queue_contents()[1]):
                engine.get_action()
    out.put(rtts)


def _client_entry(endpoint: str, requests: int, out: Any) -> None:
    client_main(endpoint, requests, out)


def served(path: Path, requests: int) -> dict[str, float]:
    from policylink.server.app import ServerApp
    from policylink.server.manifest import Manifest
    from tests.lerobot.checkpoints import ACTION_NAMES

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    manifest = Manifest.from_data(
        {
            "policy": {
                "kind": "lerobot",
                "path": str(path),
                "params": {"action_names": ACTION_NAMES},
            },
            "model_id": "bench-lerobot",
            "warmup_inferences": WARMUP,
            "health_port": 0,
            "zenoh": {"listen": [endpoint]},
        }
    )
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    with collect_audit() as collector, ServerApp(manifest):
        client = context.Process(
            target=_client_entry, args=(endpoint, requests, out), name="bench-client"
        )
        client.start()
        try:
            rtts = out.get(timeout=600)
        except queue.Empty:
            rtts = []
        client.join(60)
    lines = collector.answered(skip=WARMUP)
    forward = statistics.median(line["inference_ms"] for line in lines)
    rtt = statistics.median(rtts) if rtts else float("nan")
    return {
        "requests": len(lines),
        "server_forward_ms": forward,
        "server_overhead_ms": statistics.median(line["overhead_ms"] for line in lines),
        "round_trip_ms": rtt,
        "round_trip_p99_ms": percentile(rtts, 99),
        "added_ms": rtt - forward,
    }


def run(quick: bool = False) -> dict[str, Any]:
    import importlib.util

    if importlib.util.find_spec("lerobot") is None:
        reason = (
            "needs LeRobot: make setup-lerobot, then .venv-lerobot/bin/python -m benchmarks lerobot"
        )
        print(f"skipped: {reason}")
        return {"skipped": reason}
    import lerobot
    import torch

    from tests.lerobot.checkpoints import save_act

    repeats = 10 if quick else 100
    with tempfile.TemporaryDirectory(prefix="bench-lerobot-") as directory:
        path = save_act(Path(directory))
        local = in_process(path, repeats)
        remote = served(path, repeats)
    results = {
        "lerobot_version": lerobot.__version__,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        **local,
        **remote,
    }
    print_table(results)
    return results


def print_table(r: dict[str, Any]) -> None:
    fwd1, fwd4 = r["forward_b1_ms"], r["forward_b4_ms"]
    print(
        f"small ACT on CPU (LeRobot {r['lerobot_version']}, torch {r['torch_version']}, "
        f"{r['torch_threads']} torch threads), medians in ms"
    )
    print(f"{'':<34} {'ms':>8} {'vs fwd':>8}")
    rows = [
        ("forward, batch 1", fwd1, fwd1),
        ("forward, batch 4", fwd4, fwd4),
        ("LeRobot in-process step, batch 1", r["lerobot_step_b1_ms"], fwd1),
        ("policylink adapter step, batch 1", r["adapter_step_b1_ms"], fwd1),
        ("policylink adapter step, batch 4", r["adapter_step_b4_ms"], fwd4),
        ("served: forward (server)", r["server_forward_ms"], fwd1),
        ("served: worker outside forward", r["server_overhead_ms"], fwd1),
        ("served: client round trip", r["round_trip_ms"], fwd1),
        ("served: round trip - forward", r["added_ms"], fwd1),
    ]
    for name, value, reference in rows:
        print(f"{name:<34} {value:>8.2f} {value / reference:>8.2f}")
    print(
        f"batch 4 / batch 1 forward: {fwd4 / fwd1:.2f}; round trip p99 {r['round_trip_p99_ms']:.2f}"
    )
