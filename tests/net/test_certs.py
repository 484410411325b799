"""`policylink certs` and the module under it: what a fleet's certificates must be for Zenoh to
accept them and for the ACL to name robots by them."""

from __future__ import annotations

import ipaddress
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

from policylink.cli.main import app
from policylink.net import certs


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_a_fleet_is_a_ca_a_server_and_one_certificate_per_robot(tmp_path: Path) -> None:
    issued = certs.issue_fleet(tmp_path, robots=["arm-1", "arm_2.b"], server_names=["gpu-box"])
    assert issued.robots == ["arm-1", "arm_2.b"]
    ca = load(tmp_path / "ca.pem")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name in ("arm-1", "arm_2.b"):
        robot = load(tmp_path / "robots" / f"{name}.pem")
        robot.verify_directly_issued_by(ca)
        assert certs.common_name(tmp_path / "robots" / f"{name}.pem") == name
        usages = robot.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in usages
    server = load(tmp_path / "server.pem")
    server.verify_directly_issued_by(ca)
    assert certs.common_name(tmp_path / "server.pem") == certs.SERVER_COMMON_NAME
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["gpu-box", "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert not (tmp_path / "router.pem").exists()


def test_private_keys_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    certs.issue_fleet(tmp_path, robots=["arm-1"], router_names=["policylink-router"])
    keys = sorted(tmp_path.rglob("*.key"))
    assert sorted(key.name for key in keys) == ["arm-1.key", "ca.key", "router.key", "server.key"]
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_running_again_adds_robots_under_the_same_ca_and_keeps_what_exists(
    tmp_path: Path,
) -> None:
    certs.issue_fleet(tmp_path, robots=["arm-1"])
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    issued = certs.issue_fleet(tmp_path, robots=["arm-2"])
    assert issued.robots == ["arm-1", "arm-2"]
    for path, data in before.items():
        assert path.read_bytes() == data, f"{path} was rewritten"
    assert tmp_path / "ca.key" in issued.kept
    load(tmp_path / "robots" / "arm-2.pem").verify_directly_issued_by(load(tmp_path / "ca.pem"))


def test_force_makes_a_new_ca_and_reissues_every_robot_under_it(tmp_path: Path) -> None:
    certs.issue_fleet(tmp_path, robots=["arm-1"])
    old_ca = (tmp_path / "ca.pem").read_bytes()
    issued = certs.issue_fleet(tmp_path, robots=["arm-2"], force=True)
    assert (tmp_path / "ca.pem").read_bytes() != old_ca
    assert issued.robots == ["arm-1", "arm-2"]
    ca = load(tmp_path / "ca.pem")
    for name in issued.robots:
        load(tmp_path / "robots" / f"{name}.pem").verify_directly_issued_by(ca)


@pytest.mark.parametrize("robot", ["arm 1", "arm/1", ".hidden", "", "x" * 97])
def test_a_robot_id_that_is_not_a_key_segment_is_refused_not_rewritten(
    tmp_path: Path, robot: str
) -> None:
    with pytest.raises(certs.CertError, match="client id"):
        certs.issue_fleet(tmp_path, robots=[robot])
    assert not (tmp_path / "ca.pem").exists()


def test_a_server_name_that_is_neither_a_dns_name_nor_an_ip_is_refused(tmp_path: Path) -> None:
    with pytest.raises(certs.CertError, match="gpu box"):
        certs.issue_fleet(tmp_path, robots=[], server_names=["gpu box"])


def test_half_a_ca_is_an_error_not_a_new_ca(tmp_path: Path) -> None:
    certs.issue_fleet(tmp_path, robots=[])
    (tmp_path / "ca.key").unlink()
    with pytest.raises(certs.CertError, match=r"ca\.key is missing.*--force"):
        certs.issue_fleet(tmp_path, robots=["arm-1"])


def test_the_command_writes_certificates_and_the_acl_for_every_robot(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    robots_file = tmp_path / "robots.txt"
    robots_file.write_text("# lab 2\narm-3\n\narm-4  # spare\n")
    runner = CliRunner()
    first = runner.invoke(app, ["certs", "--out", str(out), "--robot", "arm-1"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(
        app, ["certs", "--out", str(out), "-r", "arm-2", "--robots-file", str(robots_file)]
    )
    assert second.exit_code == 0, second.output
    assert "kept" in second.output
    acl = json.loads((out / "acl.json5").read_text())["access_control"]
    robots = next(s for s in acl["subjects"] if s["id"] == "policylink-robots")
    assert robots["cert_common_names"] == ["arm-1", "arm-2", "arm-3", "arm-4"]


def test_the_command_names_what_is_wrong(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["certs", "--out", str(tmp_path), "--robot", "arm 1"])
    assert result.exit_code == 2
    assert "client id 'arm 1' is not a valid key segment" in result.output
