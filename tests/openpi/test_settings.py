"""The manifest's `openpi:` block is validated once, at load."""

import pytest

from policylink.server.openpi_settings import OpenPISettings


def test_defaults_serve_both_paths_on_loopback_without_a_key():
    settings = OpenPISettings()
    assert settings.paths == ["/", "/v1/realtime/robot/openpi"]
    assert settings.host == "127.0.0.1"
    assert settings.api_key({}) is None


def test_api_key_is_read_from_the_named_environment_variable():
    settings = OpenPISettings(api_key_env="POLICY_KEY")
    assert settings.api_key({"POLICY_KEY": "s3cret\n"}) == "s3cret"


def test_missing_api_key_variable_is_an_error_naming_it():
    settings = OpenPISettings(api_key_env="POLICY_KEY")
    with pytest.raises(ValueError, match=r"'POLICY_KEY'.*unset or empty"):
        settings.api_key({})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"port": 70000}, "openpi.port"),
        ({"paths": ["ws"]}, "openpi.paths"),
        ({"paths": ["/healthz"]}, "cannot include /healthz"),
        ({"max_frame_bytes": 10}, "openpi.max_frame_bytes"),
        ({"request_timeout_s": 0}, "openpi.request_timeout_s"),
        ({"key_map": "franka"}, "preset 'franka' is unknown"),
        ({"api_key_env": " "}, "openpi.api_key_env"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(fields: dict, message: str):
    with pytest.raises(ValueError, match=message):
        OpenPISettings(**fields)
