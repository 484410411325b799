"""`policylink rollout`: `lerobot-rollout`'s flags, with the policy served by policylink.

A LeRobot user's command line keeps working: `--robot.type=so101_follower --robot.port=...
--robot.cameras="{front: {type: opencv, ...}}" --policy.path=... --task=... --duration=60
--inference.type=rtc`. The robot is LeRobot's, decoded by draccus from LeRobot's own
`RobotConfig` registry; the policy runs on the server at `--server`. The README's LeRobot section
has the flag-by-flag table.
"""

from __future__ import annotations

import typer

from policylink.cli.run import _drive, _fail

PLUGIN_FLAG = "--robot_plugin"
TYPE_FLAG = "--robot.type"


def rollout(ctx: typer.Context) -> None:
    """Run a LeRobot robot against a policylink server with lerobot-rollout's flags.

    As lerobot-rollout: --robot.type=<type>, --robot.<field>=<value>, --policy.path=<checkpoint
    dir> (only its config.json is read, to check the robot), --task, --fps, --duration (0 runs
    until stopped), --inference.type=sync|rtc, --inference.rtc.execution_horizon,
    --inference.queue_threshold, --rename_map.

    policylink's own: --server=<zenoh endpoint>, --client_id, --model_id, --jpeg_quality,
    --robot_plugin=<module> (repeatable).
    """
    try:
        import draccus

        from policylink.cli.rollout_flags import (
            RolloutFlags,
            check_against_checkpoint,
            rollout_settings,
        )
        from policylink.client.lerobot_robot import register_robot_type, robot_from_config
    except ImportError as exc:
        raise _fail(
            f"policylink rollout needs LeRobot's robot code ({exc}); pip install lerobot",
            command="rollout",
        ) from None
    from policylink.client import ClientConfig, RobotLayout

    args, plugins, robot_type = _split_args(list(ctx.args))
    try:
        # Registers the type (and any plugin's) before draccus meets `--robot.type`.
        if robot_type:
            register_robot_type(robot_type, plugins)
        flags = draccus.parse(RolloutFlags, args=args)
        settings = rollout_settings(flags)
        robot = robot_from_config(robot_type, flags.robot, flags.rename_map)
        if flags.policy.path:
            check_against_checkpoint(flags.policy.path, RobotLayout.of(robot))
        config = ClientConfig(**settings.client)
    except ValueError as exc:
        raise _fail(str(exc), command="rollout") from None
    _drive(robot, config, settings.engine, 0, settings.duration_s, command="rollout")


def _split_args(args: list[str]) -> tuple[list[str], list[str], str]:
    """draccus's arguments, the plugin modules to import first, and the robot type named."""
    rest, plugins, robot_type = [], [], ""
    items = iter(args)
    for arg in items:
        name, sep, value = arg.partition("=")
        if name in (PLUGIN_FLAG, TYPE_FLAG) and not sep:
            value = next(items, "")
        if name == PLUGIN_FLAG:
            plugins.append(value)
            continue
        if name == TYPE_FLAG:
            robot_type = value
        rest.append(arg if sep or name != TYPE_FLAG else f"{name}={value}")
    return rest, plugins, robot_type
