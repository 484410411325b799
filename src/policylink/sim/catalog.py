"""Simulated robots by name, for `policylink run --robot sim:<task>` and `gym:<env id>`.

Options arrive as plain key/value pairs from the command line; each factory names the keys
it knows, so a typo is an error that lists the valid ones rather than a silent default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from policylink.sim.camera import CameraConfig
from policylink.sim.robot import SimArm
from policylink.sim.task import ReachTrackConfig

if TYPE_CHECKING:
    from policylink.sim.gym_robot import GymRobot

SIM_TASKS = ("reach_track",)
_REACH_TRACK_OPTIONS = {"seed", "fps", "height", "width", "wrist_camera"}
_GYM_OPTIONS = {"seed", "camera", "max_episode_steps"}


def _check_options(what: str, options: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"{what}: unknown options {unknown}; known options are {sorted(known)}")


def make_sim_robot(task: str, options: dict[str, Any] | None = None) -> SimArm:
    options = dict(options or {})
    if task not in SIM_TASKS:
        raise ValueError(f"sim task {task!r} is unknown; use one of {list(SIM_TASKS)}")
    _check_options(f"sim:{task}", options, _REACH_TRACK_OPTIONS)
    height, width = int(options.get("height", 480)), int(options.get("width", 640))
    cameras = [CameraConfig("top", height, width)]
    if options.get("wrist_camera", False):
        cameras.append(CameraConfig("wrist", height, width, view="wrist"))
    return SimArm(
        ReachTrackConfig(fps=float(options.get("fps", 30.0))),
        cameras=tuple(cameras),
        seed=int(options.get("seed", 0)),
    )


def make_gym_robot(env_id: str, options: dict[str, Any] | None = None) -> GymRobot:
    """A `GymRobot`; gymnasium is imported only here (the `sim` extra)."""
    options = dict(options or {})
    _check_options(f"gym:{env_id}", options, _GYM_OPTIONS)
    try:
        import gymnasium

        from policylink.sim.gym_robot import GymRobot
    except ImportError as exc:
        raise ValueError(
            f"gym:{env_id} needs gymnasium ({exc}); pip install 'policylink[sim]'"
        ) from exc
    make_options = {}
    if "max_episode_steps" in options:
        make_options["max_episode_steps"] = int(options["max_episode_steps"])
    try:
        env = gymnasium.make(env_id, render_mode="rgb_array", **make_options)
    except gymnasium.error.Error as exc:
        raise ValueError(f"gym:{env_id}: {exc}") from None
    return GymRobot(
        env, camera=str(options.get("camera", "camera")), seed=int(options.get("seed", 0))
    )
