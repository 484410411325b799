"""The manifest: defaults that serve, YAML plus overrides, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from policylink.server.manifest import Manifest, ManifestError, default_manifest_text

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_a_valid_manifest_serving_the_builtin_transformer():
    manifest = Manifest()
    assert manifest.policy.kind == "transformer"
    assert manifest.namespace().base == "@policylink/policylink-transformer/main/default"


def test_printed_default_manifest_loads_to_the_defaults(tmp_path):
    path = tmp_path / "default.yaml"
    path.write_text(default_manifest_text())
    assert Manifest.load(str(path)) == Manifest()


def test_printed_default_manifest_spells_out_every_field_of_every_block():
    printed = yaml.safe_load(default_manifest_text())
    assert set(printed) == set(Manifest.model_fields)
    for block in ("policy", "rtc", "zenoh", "capture"):
        block_type = Manifest.model_fields[block].annotation
        assert set(printed[block]) == set(block_type.model_fields), block


def test_example_manifest_loads():
    manifest = Manifest.load(str(REPO / "examples" / "server.yaml"))
    assert [c["name"] for c in manifest.policy.params["cameras"]] == ["front", "wrist"]


def test_overrides_win_over_the_file_and_reach_into_blocks(tmp_path):
    path = tmp_path / "server.yaml"
    path.write_text(yaml.safe_dump({"max_sessions": 2, "rtc": {"enabled": True}}))
    manifest = Manifest.load(str(path), {"max_sessions": 5, "rtc.enabled": False})
    assert manifest.max_sessions == 5
    assert manifest.rtc.enabled is False
    assert manifest.rtc.execution_horizon == 10


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"max_sessions": 0}, "max_sessions"),
        ({"serving_mode": "greedy"}, "serving_mode"),
        ({"rtc.execution_horizon": -1}, "rtc.execution_horizon"),
        ({"zenoh.mode": "mesh"}, "zenoh.mode"),
        ({"max_sesions": 3}, "max_sesions: unknown field"),
        ({"policy.kindd": "x"}, "policy.kindd: unknown field"),
        ({"pin_task": True}, "pin_task is true but default_task is empty"),
        ({"device": "gpu"}, "device 'gpu'"),
        ({"model_id": "///"}, "model id '///'"),
        ({"zenoh.tls_cert": "cert.pem"}, "tls_key must be given together"),
    ],
)
def test_invalid_field_is_refused_with_its_name(overrides, named):
    with pytest.raises(ManifestError, match="invalid manifest") as caught:
        Manifest.load(None, overrides)
    assert named in str(caught.value)


def test_missing_manifest_file_is_named(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        Manifest.load(str(tmp_path / "absent.yaml"))


def test_manifest_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ManifestError, match="mapping of fields"):
        Manifest.load(str(path))
