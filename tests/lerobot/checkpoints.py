"""Tiny LeRobot checkpoints built from config with hand-made statistics: no hub, no dataset.

Each is saved the way `lerobot-train` saves one (config, weights, processor pipelines), so the
adapter loads it through the same code path as a real checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ACTION_NAMES = [f"joint_{i}.pos" for i in range(6)]
STATE_DIM = 6
CAMERA = "top"
IMAGE_SHAPE = (3, 48, 64)


def _features() -> tuple[dict, dict]:
    from lerobot.configs.types import FeatureType, PolicyFeature

    inputs = {
        "observation.state": PolicyFeature(FeatureType.STATE, (STATE_DIM,)),
        f"observation.images.{CAMERA}": PolicyFeature(FeatureType.VISUAL, IMAGE_SHAPE),
    }
    outputs = {"action": PolicyFeature(FeatureType.ACTION, (len(ACTION_NAMES),))}
    return inputs, outputs


def _stats() -> dict:
    """Statistics far from identity, so a skipped (un)normalisation shows in every chunk."""
    import torch

    dim = len(ACTION_NAMES)
    return {
        "observation.state": {
            "mean": torch.linspace(-1.0, 1.0, STATE_DIM),
            "std": torch.full((STATE_DIM,), 2.0),
            "min": torch.full((STATE_DIM,), -4.0),
            "max": torch.full((STATE_DIM,), 4.0),
        },
        f"observation.images.{CAMERA}": {
            "mean": torch.full((3, 1, 1), 0.5),
            "std": torch.full((3, 1, 1), 0.25),
            "min": torch.zeros((3, 1, 1)),
            "max": torch.ones((3, 1, 1)),
        },
        "action": {
            "mean": torch.arange(dim, dtype=torch.float32) * 10.0,
            "std": torch.full((dim,), 3.0),
            "min": torch.full((dim,), -50.0),
            "max": torch.full((dim,), 100.0),
        },
    }


def _save(policy, config, directory: Path) -> Path:
    from lerobot.policies.factory import make_pre_post_processors

    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=_stats())
    policy.save_pretrained(directory)
    preprocessor.save_pretrained(directory)
    postprocessor.save_pretrained(directory)
    return directory


def save_act(directory: Path, seed: int = 0, chunk_size: int = 10) -> Path:
    """A small ACT (resnet18 backbone, random weights: `pretrained_backbone_weights=None`)."""
    import torch
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy

    inputs, outputs = _features()
    config = ACTConfig(
        input_features=inputs,
        output_features=outputs,
        pretrained_backbone_weights=None,
        dim_model=64,
        n_heads=2,
        dim_feedforward=128,
        n_encoder_layers=1,
        n_decoder_layers=1,
        n_vae_encoder_layers=1,
        chunk_size=chunk_size,
        n_action_steps=chunk_size,
        device="cpu",
    )
    torch.manual_seed(seed)
    return _save(ACTPolicy(config), config, directory)


def save_diffusion(directory: Path, seed: int = 0) -> Path:
    """A small diffusion policy with two observation steps, so history would matter."""
    import torch
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    inputs, outputs = _features()
    config = DiffusionConfig(
        input_features=inputs,
        output_features=outputs,
        pretrained_backbone_weights=None,
        n_obs_steps=2,
        horizon=8,
        n_action_steps=4,
        drop_n_last_frames=3,
        down_dims=(16, 32),
        n_groups=4,
        diffusion_step_embed_dim=16,
        spatial_softmax_num_keypoints=8,
        num_inference_steps=3,
        crop_shape=None,
        device="cpu",
    )
    torch.manual_seed(seed)
    return _save(DiffusionPolicy(config), config, directory)


def save_vqbet(directory: Path, seed: int = 0) -> Path:
    """A small VQ-BeT with three observation steps (history that a request must not inherit)
    and an untrained residual VQ (LeRobot warns; the code path is the trained one's)."""
    import torch
    from lerobot.policies.vqbet.configuration_vqbet import VQBeTConfig
    from lerobot.policies.vqbet.modeling_vqbet import VQBeTPolicy

    inputs, outputs = _features()
    config = VQBeTConfig(
        input_features=inputs,
        output_features=outputs,
        n_obs_steps=3,
        n_action_pred_token=3,
        action_chunk_size=4,
        crop_shape=None,
        pretrained_backbone_weights=None,
        spatial_softmax_num_keypoints=8,
        vqvae_n_embed=8,
        vqvae_embedding_dim=16,
        vqvae_enc_hidden_dim=16,
        gpt_block_size=64,
        gpt_input_dim=32,
        gpt_output_dim=32,
        gpt_n_layer=1,
        gpt_n_head=2,
        gpt_hidden_dim=32,
        device="cpu",
    )
    torch.manual_seed(seed)
    return _save(VQBeTPolicy(config), config, directory)


def save_declared_type(directory: Path, declared: str) -> Path:
    """A checkpoint directory whose config.json declares `declared` and nothing else: what a
    reward model's or an RL algorithm's checkpoint looks like to a reader of its type."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"type": declared}))
    return directory


def observation_arrays(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A state vector and an RGB camera frame (HWC uint8), as a robot would send them."""
    rng = np.random.default_rng(seed)
    state = rng.uniform(-3.0, 3.0, STATE_DIM).astype(np.float32)
    image = rng.integers(0, 256, (IMAGE_SHAPE[1], IMAGE_SHAPE[2], 3), dtype=np.uint8)
    return state, image


def save_rtc_probe(directory: Path, seed: int = 0) -> Path:
    """The RTC probe (see `tests.lerobot.rtc_probe`): state in, a flow-matching chunk out."""
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.processor_act import make_act_pre_post_processors

    from tests.lerobot.rtc_probe import RtcProbeConfig, RtcProbePolicy

    config = RtcProbeConfig(
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (STATE_DIM,))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (len(ACTION_NAMES),))},
        device="cpu",
    )
    torch.manual_seed(seed)
    stats = {key: value for key, value in _stats().items() if not key.startswith("observation.im")}
    preprocessor, postprocessor = make_act_pre_post_processors(config, dataset_stats=stats)
    RtcProbePolicy(config).save_pretrained(directory)
    preprocessor.save_pretrained(directory)
    postprocessor.save_pretrained(directory)
    return directory
