"""LeRobot robots as policylink clients, built from a robot type and its options like LeRobot does.

`policylink run --robot lerobot:<type>` lands here. The robot is built the way LeRobot's own
scripts build one (the type's registered `RobotConfig`, decoded from plain options by draccus,
then `make_robot_from_config`), so every LeRobot robot and every installed `lerobot_robot_*`
plugin works unchanged. The robot process stays weightless: only LeRobot's robot packages are
imported, and only as far as needed to find the type (one of LeRobot's own robot packages pulls
in its policy code, so they are never imported wholesale).

A `rename_map` maps the robot's observation keys onto the policy's (a camera the robot calls
`front` that the policy was trained to call `top`). Keys may be bare or in LeRobot's dataset
form (`observation.images.front`), so a map written for `lerobot-record` works here too.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from typing import Any

PREFIX = "lerobot:"
_DATASET_PREFIXES = ("observation.images.", "observation.")


def lerobot_type(robot: str) -> str | None:
    """`lerobot:so101_follower` → `so101_follower`; None when `robot` names no LeRobot robot."""
    if not robot.startswith(PREFIX):
        return None
    robot_type = robot.removeprefix(PREFIX).strip()
    if not robot_type:
        raise ValueError(f"--robot {robot!r} names no robot type; use lerobot:<type>")
    return robot_type


def make_lerobot_robot(
    robot_type: str,
    options: Mapping[str, Any] | None = None,
    *,
    plugins: Iterable[str] = (),
    rename_map: Mapping[str, str] | None = None,
) -> LeRobotRobot:
    """Build a LeRobot robot of `robot_type` from `options` (its config fields, nested dicts for
    cameras); `plugins` are modules to import first so that they register their robot types."""
    try:
        import lerobot.robots  # noqa: F401
    except ImportError as exc:
        raise ValueError(
            f"--robot lerobot:{robot_type} needs LeRobot's robot code ({exc}); pip install lerobot"
        ) from exc
    config = decode_robot_config(robot_type, options, plugins=plugins)
    return robot_from_config(robot_type, config, rename_map)


def robot_from_config(
    robot_type: str, config: Any, rename_map: Mapping[str, str] | None = None
) -> LeRobotRobot:
    """The robot of a decoded `RobotConfig` of `robot_type`, built by LeRobot's own factory,
    seen through `rename_map`."""
    from lerobot.robots import make_robot_from_config

    try:
        robot = make_robot_from_config(config)
    except ImportError as exc:
        raise ValueError(
            f"LeRobot robot {robot_type!r} needs a driver that is not installed ({exc}); "
            "install the LeRobot extra of its motors, e.g. pip install 'lerobot[feetech]'"
        ) from exc
    return LeRobotRobot(robot, rename_map or {})


def decode_robot_config(
    robot_type: str, options: Mapping[str, Any] | None = None, *, plugins: Iterable[str] = ()
) -> Any:
    """The `RobotConfig` of `robot_type` decoded from plain options, as `lerobot-rollout`
    decodes its `--robot.*` flags; no driver is imported, so this works on any machine."""
    import draccus

    config_class = register_robot_type(robot_type, plugins)
    try:
        return draccus.decode(config_class, dict(options or {}))
    except Exception as exc:
        reasons = [str(exc)]
        cause = exc.__cause__ or exc.__context__
        while cause is not None and len(reasons) < 4:
            reasons.append(str(cause))
            cause = cause.__cause__ or cause.__context__
        raise ValueError(
            f"options for LeRobot robot {robot_type!r} do not fit {config_class.__name__}: "
            + "; ".join(reasons)
        ) from exc


def register_robot_type(robot_type: str, plugins: Iterable[str] = ()) -> type:
    """Import `plugins`, then whatever registers `robot_type` and LeRobot's camera types, so
    that draccus can decode a config of that type; returns its config class."""
    for module in plugins:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"robot plugin {module!r} cannot be imported: {exc}") from exc
    config_class = find_robot_config(robot_type)
    register_camera_types()
    return config_class


def find_robot_config(robot_type: str) -> type:
    """The registered config class of `robot_type`, importing as little as possible to find it:
    installed `lerobot_robot_*` plugins first, then LeRobot's robot packages one at a time."""
    from lerobot.robots import RobotConfig
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()
    if robot_type in RobotConfig.get_known_choices():
        return RobotConfig.get_choice_class(robot_type)
    import lerobot.robots

    for package in pkgutil.iter_modules(lerobot.robots.__path__):
        if not package.ispkg:
            continue
        try:
            importlib.import_module(f"lerobot.robots.{package.name}")
        except ImportError:
            continue
        if robot_type in RobotConfig.get_known_choices():
            return RobotConfig.get_choice_class(robot_type)
    raise ValueError(
        f"LeRobot robot type {robot_type!r} is unknown; known types: "
        f"{sorted(RobotConfig.get_known_choices())} (a robot of your own: name its module with "
        "--robot-plugin, or install it as a lerobot_robot_* package)"
    )


def register_camera_types() -> None:
    """Import LeRobot's camera config modules, so `cameras: {front: {type: opencv, ...}}`
    decodes; LeRobot's own scripts import them up front for the same reason."""
    import lerobot.cameras

    for package in pkgutil.iter_modules(lerobot.cameras.__path__):
        if not package.ispkg:
            continue
        try:
            importlib.import_module(f"lerobot.cameras.{package.name}.configuration_{package.name}")
        except ImportError:
            continue


def _bare(key: str) -> str:
    for prefix in _DATASET_PREFIXES:
        if key.startswith(prefix):
            return key.removeprefix(prefix)
    return key


class LeRobotRobot:
    """A LeRobot robot seen through a rename map; actions pass through unchanged.

    Renaming happens here, on the robot side, so the wire always carries the policy's own
    feature names whatever robot sends them.
    """

    def __init__(self, robot: Any, rename_map: Mapping[str, str]) -> None:
        self.robot = robot
        raw = dict(robot.observation_features)
        renames = {_bare(source): _bare(target) for source, target in rename_map.items()}
        missing = sorted(set(renames) - set(raw))
        if missing:
            raise ValueError(
                f"rename_map renames {missing}, which robot {robot.name!r} does not observe; "
                f"its observation keys are {list(raw)}"
            )
        renamed = [renames.get(key, key) for key in raw]
        if len(set(renamed)) != len(renamed):
            raise ValueError(
                f"rename_map {dict(renames)} makes two observation keys of robot "
                f"{robot.name!r} collide: {renamed}"
            )
        self._renames = renames
        self._observation_features = dict(zip(renamed, raw.values(), strict=True))

    @property
    def observation_features(self) -> dict[str, Any]:
        return self._observation_features

    @property
    def action_features(self) -> dict[str, Any]:
        return dict(self.robot.action_features)

    @property
    def is_connected(self) -> bool:
        return bool(self.robot.is_connected)

    def connect(self) -> None:
        self.robot.connect()

    def disconnect(self) -> None:
        self.robot.disconnect()

    def get_observation(self) -> dict[str, Any]:
        raw = self.robot.get_observation()
        return {self._renames.get(key, key): value for key, value in raw.items()}

    def send_action(self, action: dict[str, Any]) -> Any:
        return self.robot.send_action(action)
