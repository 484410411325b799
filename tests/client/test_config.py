"""ClientConfig: defaults are usable; every bad value is refused with the field and the fix."""

from __future__ import annotations

import pytest

from policylink.client import ClientConfig, Fallback
from policylink.wire import KeyExprError


def test_defaults_are_valid_and_name_the_robot() -> None:
    config = ClientConfig()
    assert config.client_id.startswith("robot-")
    assert config.fallback is Fallback.HOLD
    assert config.dt_s == pytest.approx(1 / 30)


def test_fallback_is_accepted_as_a_string() -> None:
    assert ClientConfig(fallback="zero").fallback is Fallback.ZERO


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("fallback", "brake", r"fallback must be one of \['hold', 'repeat_last', 'zero'\]"),
        ("jpeg_quality", 101, "jpeg_quality must be 1..100, or 0"),
        ("buffer_time_s", -1.0, "buffer_time_s must be >= 0"),
        ("max_action_age_s", 0.0, "max_action_age_s must be a positive number"),
        ("request_timeout_s", float("nan"), "request_timeout_s must be a positive number"),
        ("zenoh_mode", "router", "zenoh_mode must be one of"),
        ("endpoint", "nonsense", "endpoint .nonsense. must look like <protocol>/<address>"),
        ("timeouts_before_reconnect", 0, "timeouts_before_reconnect must be at least 1"),
        ("rtc_horizon", -2, "rtc_horizon must be >= 0"),
        ("switch_interval_s", -0.001, "switch_interval_s must be >= 0 seconds"),
    ],
)
def test_bad_values_are_refused_naming_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClientConfig(**{field: value})


def test_backoff_bounds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match=r"reconnect_max_backoff_s .* must be at least"):
        ClientConfig(reconnect_initial_backoff_s=2.0, reconnect_max_backoff_s=1.0)


def test_tls_certificate_and_key_go_together() -> None:
    with pytest.raises(ValueError, match="tls_cert and tls_key go together"):
        ClientConfig(tls_cert="robot.pem")


def test_a_client_id_that_is_not_a_key_segment_is_refused_not_rewritten() -> None:
    with pytest.raises(KeyExprError, match="not a valid key segment"):
        ClientConfig(client_id="arm 1")
