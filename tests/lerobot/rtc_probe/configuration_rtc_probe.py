from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import NormalizationMode
from lerobot.optim.optimizers import AdamWConfig
from lerobot.policies.rtc.configuration_rtc import RTCConfig

POLICY_TYPE = "rtc_probe"


@PreTrainedConfig.register_subclass(POLICY_TYPE)
@dataclass
class RtcProbeConfig(PreTrainedConfig):
    chunk_size: int = 8
    num_steps: int = 8
    hidden: int = 32
    rtc_config: RTCConfig | None = None
    normalization_mapping: dict[str, NormalizationMode] = field(
        default_factory=lambda: {
            "STATE": NormalizationMode.MEAN_STD,
            "ACTION": NormalizationMode.MEAN_STD,
        }
    )

    def validate_features(self) -> None:
        """State in, actions out; nothing else to check."""

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig()

    def get_scheduler_preset(self) -> None:
        return None

    @property
    def observation_delta_indices(self) -> None:
        return None

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.chunk_size))

    @property
    def reward_delta_indices(self) -> None:
        return None
