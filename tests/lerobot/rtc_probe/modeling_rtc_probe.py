from __future__ import annotations

from typing import Any

import torch
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
        """Euler flow matching from time 1 to 0, as pi0's `sample_actions` does, with RTC
        guidance through LeRobot's processor whenever it is enabled."""
        state = batch["observation.state"]
        rows, steps = state.shape[0], self.config.num_steps
        x_t = torch.zeros(rows, self.config.chunk_size, self.action_dim, dtype=state.dtype)
        dt = -1.0 / steps
        for step in range(steps):
            time = 1.0 + step * dt

            def denoise(x: Tensor, time: float = time) -> Tensor:
                context = state[:, None, :].expand(-1, x.shape[1], -1)
                clock = torch.full((*x.shape[:2], 1), time, dtype=x.dtype)
                return self.velocity(torch.cat([x, context, clock], dim=-1))

            if self.rtc_processor is None:
                v_t = denoise(x_t)
            else:
                v_t = self.rtc_processor.denoise_step(
                    x_t=x_t,
                    prev_chunk_left_over=kwargs.get("prev_chunk_left_over"),
                    inference_delay=kwargs.get("inference_delay"),
                    time=time,
                    original_denoise_step_partial=denoise,
                    execution_horizon=kwargs.get("execution_horizon"),
                )
            x_t = x_t + dt * v_t
        return x_t
