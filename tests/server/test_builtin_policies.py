"""The built-in torch policies: batch-shaped chunks, checkpoints, RTC blending, relative actions."""

from __future__ import annotations

import numpy as np
import pytest

from policylink.policy.base import ChunkBatch, dummy_observation
from policylink.policy.registry import PolicyConfig, build_policy
from policylink.policy.relative import RelativePolicy
from policylink.policy.transformer import PRESETS, TransformerPolicy, blend_prefix
from policylink.wire.messages import CameraSpec

CAMERAS = [
    {"name": "front", "height": 48, "width": 64},
    {"name": "wrist", "height": 24, "width": 32},
]


def samples(policy, count: int) -> list:
    processor = policy.make_processor()
    return [processor.preprocess(dummy_observation(policy.spec, seed=i)) for i in range(count)]


def test_transformer_answers_a_batch_with_one_chunk_per_sample():
    policy = build_policy(
        PolicyConfig(params={"state_dim": 5, "chunk_size": 7, "cameras": CAMERAS})
    )
    chunks = policy.predict_chunk(ChunkBatch(samples(policy, 3)))
    assert chunks.shape == (3, 7, 5)
    assert chunks.dtype == np.float32
    assert policy.spec.cameras == (CameraSpec("front", 48, 64), CameraSpec("wrist", 24, 32))


def test_batched_rows_equal_the_same_samples_run_alone():
    policy = build_policy(PolicyConfig(params={"state_dim": 4, "cameras": CAMERAS}))
    batch = samples(policy, 3)
    together = policy.predict_chunk(ChunkBatch(batch))
    alone = np.concatenate([policy.predict_chunk(ChunkBatch([s])) for s in batch])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_same_seed_gives_the_same_weights_and_another_seed_does_not():
    def chunk(seed: int) -> np.ndarray:
        policy = build_policy(PolicyConfig(seed=seed, params={"state_dim": 3}))
        return policy.predict_chunk(ChunkBatch(samples(policy, 1)))

    np.testing.assert_array_equal(chunk(1), chunk(1))
    assert not np.allclose(chunk(1), chunk(2))


def test_checkpoint_round_trips_through_save_and_a_manifest_path(tmp_path):
    policy = build_policy(PolicyConfig(seed=3, preset="small", params={"cameras": CAMERAS}))
    policy.save(tmp_path / "ckpt")
    loaded = build_policy(PolicyConfig(path=str(tmp_path / "ckpt")))
    assert loaded.spec == policy.spec
    batch = ChunkBatch(samples(policy, 2))
    np.testing.assert_array_equal(loaded.predict_chunk(batch), policy.predict_chunk(batch))


def test_loading_a_directory_without_a_checkpoint_says_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match=r"has no config\.json"):
        TransformerPolicy.load(tmp_path)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"state_dim": 0}, "at least 1"),
        ({"widht": 3}, "unknown keys \\['widht'\\]"),
        ({"cameras": [{"name": "front"}]}, "name, height, width"),
    ],
)
def test_bad_params_are_refused_by_name(params, message):
    with pytest.raises(ValueError, match=message):
        build_policy(PolicyConfig(params=params))


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="tiny"):
        build_policy(PolicyConfig(preset="huge"))


def test_presets_grow_in_size():
    sizes = [
        sum(p.numel() for p in build_policy(PolicyConfig(preset=name)).model.parameters())
        for name in PRESETS
    ]
    assert sizes == sorted(sizes)
    assert sizes[-1] > 50 * sizes[0]


def test_rtc_blend_keeps_the_delayed_steps_and_fades_into_the_new_chunk():
    chunk = np.zeros((6, 1), np.float32)
    prefix = np.ones((4, 1), np.float32)
    blended = blend_prefix(chunk, prefix, delay=2)[:, 0]
    assert blended[:2].tolist() == [1.0, 1.0]
    assert 1.0 > blended[2] > blended[3] > 0.0
    assert blended[4:].tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(blend_prefix(chunk, None, delay=2), chunk)


def test_relative_policy_adds_the_state_it_preprocessed():
    policy = build_policy(PolicyConfig(kind="relative", params={"state_dim": 3}))
    assert isinstance(policy, RelativePolicy)
    processor = policy.make_processor()
    obs = dummy_observation(policy.spec, seed=1)
    chunk = policy.predict_chunk(ChunkBatch([processor.preprocess(obs)]))[0]
    np.testing.assert_allclose(processor.postprocess(chunk) - chunk, np.tile(obs.state, (50, 1)))


def test_relative_policy_needs_one_action_per_state_entry():
    with pytest.raises(ValueError, match="as many actions as state entries"):
        build_policy(
            PolicyConfig(kind="relative", params={"state_dim": 3, "action_names": ["a", "b"]})
        )


def test_relative_postprocess_before_preprocess_is_an_error():
    processor = build_policy(PolicyConfig(kind="relative")).make_processor()
    with pytest.raises(RuntimeError, match="before preprocess"):
        processor.postprocess(np.zeros((2, 14), np.float32))
