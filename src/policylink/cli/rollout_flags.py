"""`lerobot-rollout`'s flags as dataclasses that draccus parses the way LeRobot parses them.

`robot` is LeRobot's own `RobotConfig` choice registry, so `--robot.type` and every
`--robot.<field>` (cameras included) mean exactly what they mean to `lerobot-rollout`. The other
groups keep LeRobot's names; where a flag of LeRobot's has a policylink counterpart it maps onto
it (`rollout_settings`), and where the setting now lives on the server, or not at all, the error
says so. Imported only when `policylink rollout` runs: it needs LeRobot's robot code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lerobot.robots.config import RobotConfig

from policylink.client.robot import RobotLayout

# What `--inference.type` selects in policylink: LeRobot's `sync` (one policy call per chunk,
# the control loop waits for it) is the SyncEngine; `rtc` (chunks computed ahead in the
# background, the next one guided by the unexecuted prefix) is the RemoteEngine with RTC on.
ENGINES = {"sync": "sync", "rtc": "async"}
STRATEGIES = ("base",)


@dataclass
class PolicyFlags:
    """`--policy.path`: a checkpoint directory; the robot reads only its config.json (the
    weights stay on the server) to check that the robot has what the policy reads."""

    path: str = ""


@dataclass
class RTCFlags:
    """`--inference.rtc.*`: the horizon is the robot's; guidance weight and schedule are the
    served checkpoint's (LeRobot applies them inside the policy, which runs on the server)."""

    enabled: bool = True
    execution_horizon: int = 10
    max_guidance_weight: float | None = None
    prefix_attention_schedule: str | None = None


@dataclass
class InferenceFlags:
    type: str = "sync"
    rtc: RTCFlags = field(default_factory=RTCFlags)
    queue_threshold: int = 30


@dataclass
class StrategyFlags:
    type: str = "base"


@dataclass
class RolloutFlags:
    """LeRobot's `RolloutConfig` names, plus where the policy is served (`server`)."""

    robot: RobotConfig | None = None
    policy: PolicyFlags = field(default_factory=PolicyFlags)
    strategy: StrategyFlags = field(default_factory=StrategyFlags)
    inference: InferenceFlags = field(default_factory=InferenceFlags)
    fps: float = 30.0
    duration: float = 0.0
    task: str = ""
    rename_map: dict[str, str] = field(default_factory=dict)
    device: str | None = None
    use_torch_compile: bool = False
    display_data: bool = False
    # policylink's own: the served policy's endpoint and this robot's session.
    server: str = "tcp/127.0.0.1:7447"
    zenoh_mode: str = "peer"
    client_id: str = ""
    model_id: str = ""
    jpeg_quality: int = 90
    robot_plugins: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RolloutSettings:
    """What the flags mean to policylink: the engine kind, its settings, the run's length."""

    engine: str
    client: dict[str, Any]
    duration_s: float | None


def rollout_settings(flags: RolloutFlags) -> RolloutSettings:
    """Map the flags onto policylink's engine and `ClientConfig` fields, refusing the ones
    that belong elsewhere with where they went."""
    if flags.robot is None:
        raise ValueError("--robot.type is required (a LeRobot robot type, e.g. so101_follower)")
    if flags.strategy.type not in STRATEGIES:
        raise ValueError(
            f"--strategy.type={flags.strategy.type}: policylink rollout runs the 'base' strategy "
            "(autonomous, no recording); record episodes with the server's capture instead"
        )
    if flags.inference.type not in ENGINES:
        raise ValueError(
            f"--inference.type={flags.inference.type}: use one of {sorted(ENGINES)} "
            "(sync: the SyncEngine; rtc: the RemoteEngine with RTC prefixes)"
        )
    server_side = {
        "--device": flags.device,
        "--use_torch_compile": flags.use_torch_compile or None,
        "--inference.rtc.max_guidance_weight": flags.inference.rtc.max_guidance_weight,
        "--inference.rtc.prefix_attention_schedule": flags.inference.rtc.prefix_attention_schedule,
    }
    misplaced = [name for name, value in server_side.items() if value is not None]
    if misplaced:
        raise ValueError(
            f"{', '.join(misplaced)} set how the policy runs, which is the server's business "
            "now: put it in the serve manifest (policy.device; RTC guidance comes from the "
            "checkpoint's rtc_config)"
        )
    if flags.display_data:
        raise ValueError(
            "--display_data: policylink rollout shows no viewer; use policylink status"
        )
    if flags.fps <= 0:
        raise ValueError(f"--fps={flags.fps}: the control rate must be positive")
    if flags.duration < 0:
        raise ValueError(f"--duration={flags.duration}: use seconds, or 0 to run until stopped")
    rtc = flags.inference.type == "rtc" and flags.inference.rtc.enabled
    client = {
        "endpoint": flags.server,
        "zenoh_mode": flags.zenoh_mode,
        "client_id": flags.client_id,
        "model_id": flags.model_id,
        "task": flags.task,
        "fps": flags.fps,
        "jpeg_quality": flags.jpeg_quality,
        "rtc": rtc,
        "rtc_horizon": flags.inference.rtc.execution_horizon if rtc else 0,
    }
    if flags.inference.type == "rtc":
        # LeRobot asks for the next chunk when its queue falls to `queue_threshold` actions;
        # policylink's threshold is the same thing in seconds of playback.
        client["buffer_time_s"] = flags.inference.queue_threshold / flags.fps
    return RolloutSettings(ENGINES[flags.inference.type], client, flags.duration or None)


def check_against_checkpoint(policy_path: str, layout: RobotLayout) -> None:
    """The weightless contract: the checkpoint's config.json names what the policy reads and
    writes; a robot without those cameras, or with other state and action sizes, stops here,
    before any session is opened."""
    config_file = Path(policy_path) / "config.json"
    if not config_file.is_file():
        raise ValueError(
            f"--policy.path={policy_path}: no config.json there; give a local checkpoint "
            "directory (the robot reads only its config.json; the server holds the weights)"
        )
    import json

    config = json.loads(config_file.read_text())
    inputs = config.get("input_features", {})
    cameras = {camera.name for camera in layout.cameras}
    wanted = {
        key.removeprefix("observation.images.")
        for key, feature in inputs.items()
        if feature.get("type") == "VISUAL"
    }
    if wanted - cameras:
        raise ValueError(
            f"the policy at {policy_path} reads cameras {sorted(wanted)}; the robot has "
            f"{sorted(cameras)}: map yours onto its names with --rename_map"
        )
    problems = []
    state = inputs.get("observation.state", {}).get("shape")
    if state and state[0] != len(layout.state_names):
        problems.append(f"state {state[0]} (robot: {len(layout.state_names)})")
    action = config.get("output_features", {}).get("action", {}).get("shape")
    if action and action[0] != layout.action_dim:
        problems.append(f"action {action[0]} (robot: {layout.action_dim})")
    if problems:
        raise ValueError(f"the policy at {policy_path} expects {', '.join(problems)} dimensions")
