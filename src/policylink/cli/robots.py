"""What `--robot` can name: a simulated task, a gymnasium environment, a LeRobot robot type, or
a factory of the user's own (`package.module:function`, called with the `--robot-option`s).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from policylink.client.lerobot_robot import lerobot_type, make_lerobot_robot
from policylink.client.robot import Robot
from policylink.policy.registry import resolve_import
from policylink.sim.catalog import SIM_TASKS, make_gym_robot, make_sim_robot

FORMS = (
    f"sim:<task> ({', '.join(SIM_TASKS)})",
    "gym:<environment id>",
    "lerobot:<robot type>",
    "package.module:function",
)


def parse_options(items: list[str], flag: str = "--robot-option") -> dict[str, Any]:
    """`key=value` pairs with YAML values (`seed=3`, `cameras={front: {...}}`)."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} {item!r}: use key=value")
        try:
            options[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ValueError(f"{flag} {item!r}: the value is not valid YAML ({exc})") from None
    return options


def make_robot(
    spec: str,
    options: Mapping[str, Any] | None = None,
    *,
    plugins: list[str] | None = None,
    rename_map: Mapping[str, str] | None = None,
) -> Robot:
    options = dict(options or {})
    if spec.startswith("sim:"):
        return make_sim_robot(spec.removeprefix("sim:"), options)
    if spec.startswith("gym:"):
        return make_gym_robot(spec.removeprefix("gym:"), options)
    robot_type = lerobot_type(spec)
    if robot_type is not None:
        return make_lerobot_robot(robot_type, options, plugins=plugins or (), rename_map=rename_map)
    if ":" not in spec:
        raise ValueError(f"--robot {spec!r} is not one of: {'; '.join(FORMS)}")
    factory = resolve_import(spec, "--robot")
    try:
        robot = factory(**options)
    except TypeError as exc:
        raise ValueError(f"--robot {spec!r} cannot be called with {options}: {exc}") from None
    missing = [
        name
        for name in ("observation_features", "action_features", "get_observation", "send_action")
        if not hasattr(robot, name)
    ]
    if missing:
        raise ValueError(
            f"--robot {spec!r} returned {type(robot).__name__}, which lacks {missing}; a robot "
            "needs LeRobot's interface (observation_features, action_features, connect, "
            "disconnect, get_observation, send_action)"
        )
    return robot
