"""The tallies every robot audit keeps: one chaos robot's (`RobotAudit`) or a fleet's (`Audit`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ActionAudit:
    """What robots executed, checked action by action; every `bad_*` figure must be zero.

    - wrong model: the marker names a server of another revision than the robot's first
      action's, or a server the test did not start;
    - wrong robot: the row was computed from another robot's observation;
    - too old: the observation behind it is older than `max_action_age_s` when it plays;
    - stale session: it came from a server the robot had already moved away from.
    """

    executed: int = 0
    bad_wrong_model: int = 0
    bad_wrong_robot: int = 0
    bad_too_old: int = 0
    bad_stale_session: int = 0
    get_action_calls: int = 0
    get_action_p99_ms: float = 0.0
    get_action_max_ms: float = 0.0
    worst: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.bad_wrong_model
            or self.bad_wrong_robot
            or self.bad_too_old
            or self.bad_stale_session
        )
