"""RTC arguments reach LeRobot's RTC guidance, per row, as they do for pi0, pi05 and SmolVLA.

Those families cannot be built offline, so a probe policy with the same sampler stands in (see
`tests.lerobot.rtc_probe`); it is registered as an RTC family for these tests only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from policylink.policy import lerobot as adapter
from policylink.policy.base import ChunkBatch
from policylink.policy.registry import PolicyConfig, build_policy
from policylink.wire.messages import Observation
from tests.lerobot import checkpoints
from tests.lerobot.checkpoints import ACTION_NAMES

pytest.importorskip("lerobot", reason="LeRobot lives in its own environment: make test-lerobot")

DELAY = 3


@pytest.fixture(scope="module")
def probe_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_rtc_probe(tmp_path_factory.mktemp("rtc-probe"))


@pytest.fixture(scope="module")
def probe(probe_path: Path) -> Iterator[adapter.LeRobotPolicy]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(
            adapter.FAMILIES, "rtc_probe", adapter.Family("chunk", "chunk_size", rtc=True)
        )
        config = PolicyConfig(
            kind="lerobot", path=str(probe_path), params={"action_names": ACTION_NAMES}
        )
        yield build_policy(config)


def samples(policy: adapter.LeRobotPolicy, seeds: list[int]) -> list:
    processor = policy.make_processor()
    return [
        processor.preprocess(Observation(state=checkpoints.observation_arrays(seed)[0]))
        for seed in seeds
    ]


def prefix(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (6, len(ACTION_NAMES)))


def test_an_rtc_family_is_loaded_with_rtc_guidance_on(probe):
    assert probe.spec.supports_rtc
    assert probe.spec.family == "lerobot.rtc_probe"


def test_a_prefix_pulls_the_chunk_start_toward_it(probe):
    (sample,) = samples(probe, [1])
    plain = probe.predict_chunk(ChunkBatch([sample]))[0]
    guide = prefix(7)
    guided = probe.predict_chunk(ChunkBatch([sample], [DELAY], [guide]))[0]
    plain_error = np.abs(plain[:DELAY] - guide[:DELAY]).mean()
    guided_error = np.abs(guided[:DELAY] - guide[:DELAY]).mean()
    assert guided_error < 0.5 * plain_error


def test_without_a_prefix_the_chunk_is_what_lerobot_computes_without_rtc(probe, probe_path):
    from tests.lerobot.rtc_probe import RtcProbePolicy

    (sample,) = samples(probe, [2])
    lerobot_policy = RtcProbePolicy.from_pretrained(probe_path)
    assert lerobot_policy.rtc_processor is None
    expected = lerobot_policy.predict_action_chunk(sample)[0].numpy()
    np.testing.assert_allclose(probe.predict_chunk(ChunkBatch([sample]))[0], expected)


def test_each_row_gets_lerobots_chunk_for_its_own_rtc_arguments(probe, probe_path):
    import torch
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.rtc.configuration_rtc import RTCConfig

    from tests.lerobot.rtc_probe import RtcProbePolicy

    config = PreTrainedConfig.from_pretrained(probe_path)
    config.rtc_config = RTCConfig(enabled=True)
    lerobot_policy = RtcProbePolicy.from_pretrained(probe_path, config=config)
    rows = samples(probe, [3, 4, 5, 6])
    delays = [2, 4, 2, 0]
    prefixes = [prefix(10), prefix(11), prefix(12), None]
    together = probe.predict_chunk(ChunkBatch(rows, delays, prefixes))
    for i, row in enumerate(rows):
        kwargs = {}
        if prefixes[i] is not None:
            kwargs = {
                "inference_delay": delays[i],
                "prev_chunk_left_over": torch.from_numpy(prefixes[i]).float()[None],
            }
        expected = lerobot_policy.predict_action_chunk(row, **kwargs)[0].numpy()
        np.testing.assert_allclose(together[i], expected, rtol=1e-5, atol=1e-6)
