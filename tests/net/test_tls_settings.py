"""TLS and ACL settings: the three PEM files go together (or the CA alone), a missing one is
named with its fix, a file that is not there is named when the session opens, and an ACL is
only accepted where it can be enforced. The manifest, the robot's config and the router refuse
the same things."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from policylink.cli.main import app
from policylink.client import ClientConfig
from policylink.net.certs import issue_fleet
from policylink.net.zenoh_session import make_config
from policylink.net.zenoh_settings import ZenohSettings
from policylink.server.manifest import Manifest, ManifestError


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, str]:
    issue_fleet(tmp_path, robots=["arm-1"])
    return {
        "tls_root_ca": str(tmp_path / "ca.pem"),
        "tls_cert": str(tmp_path / "robots" / "arm-1.pem"),
        "tls_key": str(tmp_path / "robots" / "arm-1.key"),
    }


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        (["tls_cert"], "tls_root_ca and zenoh.tls_key are missing"),
        (["tls_key"], "tls_root_ca and zenoh.tls_cert are missing"),
        (["tls_cert", "tls_key"], "tls_root_ca is missing"),
        (["tls_root_ca", "tls_cert"], "tls_key is missing"),
        (["tls_root_ca", "tls_key"], "tls_cert is missing"),
    ],
)
def test_part_of_a_certificate_names_the_missing_files_and_the_fix(
    pems: dict[str, str], given: list[str], missing: str
) -> None:
    with pytest.raises(ValueError, match=missing) as error:
        ZenohSettings(**{name: pems[name] for name in given})
    assert "Set zenoh." in str(error.value)


def test_all_three_files_or_the_ca_alone_or_none(pems: dict[str, str]) -> None:
    ZenohSettings()
    ZenohSettings(tls_root_ca=pems["tls_root_ca"])  # TLS that verifies the server only
    ZenohSettings(**pems, tls_mtls=True)


def test_mutual_tls_needs_a_certificate(pems: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="tls_mtls needs"):
        ZenohSettings(tls_root_ca=pems["tls_root_ca"], tls_mtls=True)


def test_an_acl_needs_mutual_tls_and_a_process_that_accepts_connections(
    pems: dict[str, str],
) -> None:
    with pytest.raises(ValueError, match=r"needs zenoh\.tls_mtls"):
        ZenohSettings(**pems, acl_file="acl.json5")
    with pytest.raises(ValueError, match="policylink router --acl"):
        ZenohSettings(mode="client", **pems, tls_mtls=True, acl_file="acl.json5")
    ZenohSettings(mode="router", **pems, tls_mtls=True, acl_file="acl.json5")


def test_a_file_that_is_not_there_is_named_when_the_session_opens(
    pems: dict[str, str], tmp_path: Path
) -> None:
    absent = str(tmp_path / "nowhere" / "server.key")
    settings = ZenohSettings(**{**pems, "tls_key": absent}, tls_mtls=True)
    with pytest.raises(ValueError, match=f"no such file: zenoh.tls_key \\({absent}\\)"):
        make_config(settings)


def test_the_manifest_refuses_part_of_a_certificate_but_not_files_elsewhere() -> None:
    with pytest.raises(ManifestError, match=r"zenoh\.tls_key is missing"):
        Manifest.from_data({"zenoh": {"tls_root_ca": "ca.pem", "tls_cert": "server.pem"}})
    with pytest.raises(ManifestError, match=r"needs zenoh\.tls_mtls"):
        Manifest.from_data({"zenoh": {"acl_file": "acl.json5"}})
    # A manifest names the files of the machine that serves it: validated anywhere.
    tls = {"tls_root_ca": "/etc/a/ca.pem", "tls_cert": "/etc/a/s.pem", "tls_key": "/etc/a/s.key"}
    manifest = Manifest.from_data({"zenoh": {**tls, "tls_mtls": True, "acl_file": "/etc/a/acl"}})
    assert manifest.zenoh.to_settings().acl_file == "/etc/a/acl"


def test_a_robot_config_names_a_missing_file_when_it_is_built(
    pems: dict[str, str], tmp_path: Path
) -> None:
    ClientConfig(client_id="arm-1", **pems)
    ClientConfig(client_id="arm-1", tls_root_ca=pems["tls_root_ca"])
    absent = str(tmp_path / "arm-1.pem")
    with pytest.raises(ValueError, match="no such file: tls_cert"):
        ClientConfig(client_id="arm-1", **{**pems, "tls_cert": absent})
    with pytest.raises(ValueError, match="tls_root_ca is missing"):
        ClientConfig(client_id="arm-1", tls_cert=pems["tls_cert"], tls_key=pems["tls_key"])


def test_the_router_refuses_an_acl_it_cannot_enforce(pems: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    listen = ["--listen", "tls/127.0.0.1:0"]
    no_key = runner.invoke(
        app,
        ["router", *listen, "--acl", "acl.json5", "--tls-root-ca", pems["tls_root_ca"]],
    )
    assert no_key.exit_code == 2
    assert "--acl needs --tls-cert, --tls-key" in no_key.output
    tls = ["--tls-root-ca", pems["tls_root_ca"], "--tls-cert", pems["tls_cert"]]
    tls += ["--tls-key", pems["tls_key"]]
    absent = str(tmp_path / "acl.json5")
    no_file = runner.invoke(app, ["router", *listen, *tls, "--acl", absent])
    assert no_file.exit_code == 2
    assert f"no such file: zenoh.acl_file ({absent})" in no_file.output
