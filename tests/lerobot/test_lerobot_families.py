"""Every policy type the installed LeRobot registers has a serving decision, and the server's
serving-mode registry says the same thing the adapter does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from policylink.policy import lerobot as adapter
from policylink.server import serving_modes

lerobot = pytest.importorskip(
    "lerobot", reason="LeRobot lives in its own environment: make test-lerobot"
)


def registered_types() -> dict[str, set[str]]:
    """What LeRobot's registries hold, by registry.

    Reward models and RL algorithms are read from their modules' source: importing
    `lerobot.rewards` or `lerobot.rl` needs LeRobot's dataset extra, which serving does not.
    """
    # Importing the package registers every policy config.
    import lerobot.policies
    from lerobot.configs.policies import PreTrainedConfig

    root = Path(lerobot.__file__).parent

    def declared(registry: str, sources: str) -> set[str]:
        pattern = re.compile(registry + r"\.register_subclass\((?:name=)?\"(\w+)\"\)")
        return {m for path in root.glob(sources) for m in pattern.findall(path.read_text())}

    return {
        "policies": set(PreTrainedConfig.get_known_choices()),
        "reward models": declared("RewardModelConfig", "rewards/*/configuration_*.py"),
        "RL algorithms": declared("RLAlgorithmConfig", "rl/algorithms/**/*.py"),
    }


def test_every_registered_type_is_classified():
    for registry, types in registered_types().items():
        unclassified = sorted(types - set(adapter.FAMILIES) - set(adapter.REFUSED))
        assert not unclassified, f"LeRobot {registry} without a serving decision: {unclassified}"


def test_reward_models_and_rl_algorithms_are_refused():
    types = registered_types()
    assert types["reward models"] and types["RL algorithms"], "registrations not found"
    assert types["reward models"] | types["RL algorithms"] <= set(adapter.REFUSED)


def test_no_type_is_both_served_and_refused():
    assert not set(adapter.FAMILIES) & set(adapter.REFUSED)


def test_the_serving_mode_registry_repeats_each_familys_verdict():
    for policy_type, family in adapter.FAMILIES.items():
        assert serving_modes.VERIFIED_FAMILIES.get(f"lerobot.{policy_type}") == family.mode, (
            policy_type
        )
    listed = {name for name in serving_modes.VERIFIED_FAMILIES if name.startswith("lerobot.")}
    assert listed == {f"lerobot.{policy_type}" for policy_type in adapter.FAMILIES}


def test_molmoact2_takes_rtc_in_continuous_mode_only_and_a_per_episode_seed_is_exclusive():
    from lerobot.policies.molmoact2.configuration_molmoact2 import MolmoAct2Config

    continuous = MolmoAct2Config(per_episode_seed=True, inference_action_mode="continuous")
    name, family = adapter.family_of("molmoact2", continuous)
    assert name not in serving_modes.VERIFIED_FAMILIES
    assert family.rtc
    _, discrete = adapter.family_of("molmoact2", MolmoAct2Config(inference_action_mode="discrete"))
    assert not discrete.rtc


def test_the_chunk_length_field_of_every_family_exists_in_its_config():
    from lerobot.configs.policies import PreTrainedConfig

    for policy_type, family in adapter.FAMILIES.items():
        config_class = PreTrainedConfig.get_choice_class(policy_type)
        assert family.chunk_length in config_class.__dataclass_fields__, policy_type
