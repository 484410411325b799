from __future__ import annotations

from typing import Any

import torch
from lerobot.policies.common.flow_matching import euler_integrate
from lerobot.policies.pretrained import PreTrainedPolicy
from lerobot.policies.rtc.modeling_rtc import RTCProcessor
from torch import Tensor, nn

from tests.lerobot.rtc_probe.configuration_rtc_probe import POLICY_TYPE, RtcProbeConfig


class RtcProbePolicy(PreTrainedPolicy):
    config_class = RtcProbeConfig
    name = POLICY_TYPE

    def __init__(self, config: RtcProbeConfig, **kwargs: Any) -> None:
        super().__init__(config)
        self.config = config
        state_dim = config.input_features["observation.state"].shape[0]
        self.action_dim = config.output_features["action"].shape[0]
        self.velocity = nn.Sequential(
            nn.Linear(self.action_dim + state_dim + 1, config.hidden),
            nn.Tanh(),
            nn.Linear(config.hidden, self.action_dim),
        )
        enabled = config.rtc_config is not None and config.rtc_config.enabled
        self.rtc_processor = RTCProcessor(config.rtc_config) if enabled else None

    def get_optim_params(self) -> dict:
        return {"params": self.parameters()}

    def reset(self) -> None:
        """No episode state: the chunk call reads only its batch."""

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict | None]:
        raise NotImplementedError("the probe is never trained")

    def select_action(self, batch: dict[str, Tensor], **kwargs: Any) -> Tensor:
        return self.predict_action_chunk(batch, **kwargs)[:, 0]

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Tensor], **kwargs: Any) -> Tensor:
        """LeRobot's own flow-matching sampler (`euler_integrate`, which pi0, pi05 and SmolVLA
        call), with the RTC arguments passed through exactly as they pass them."""
        state = batch["observation.state"]
        noise = torch.zeros(state.shape[0], self.config.chunk_size, self.action_dim)

        def denoise(x_t: Tensor, time: Tensor) -> Tensor:
            context = state[:, None, :].expand(-1, x_t.shape[1], -1)
            clock = time[:, None, None].expand(-1, x_t.shape[1], 1).to(x_t.dtype)
            return self.velocity(torch.cat([x_t, context, clock], dim=-1))

        enabled = self.config.rtc_config is not None and self.config.rtc_config.enabled
        return euler_integrate(
            denoise,
            noise,
            self.config.num_steps,
            rtc_processor=self.rtc_processor,
            rtc_enabled=enabled,
            inference_delay=kwargs.get("inference_delay"),
            prev_chunk_left_over=kwargs.get("prev_chunk_left_over"),
            execution_horizon=kwargs.get("execution_horizon"),
        )
