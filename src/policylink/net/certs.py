"""A fleet's certificates: one CA, a server certificate, one client certificate per robot.

Identity is proven by the transport: with mutual TLS every process presents a certificate the
fleet CA signed, and the Zenoh access-control list (see `policylink.net.acl`) confines each
robot to the keys that name it by matching the certificate's common name, which is therefore
the robot's client id, checked as a key segment exactly as the key space checks it.

Keys are ECDSA P-256 (what rustls, under Zenoh, verifies everywhere), written as PKCS#8 PEM
with mode 0600 before any byte of them lands on disk. Server and router certificates carry
subject alternative names, because Zenoh checks the name a process dials against them
(`localhost` and `127.0.0.1` are always included so one box works out of the box); robot
certificates are client certificates, named by their common name only.

An existing CA is reused, never replaced silently: re-running with more robots signs their
certificates with the same CA, so every certificate already deployed stays valid. Existing
leaf files are kept too; `force` replaces everything (and then invalidates what is deployed).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from policylink.wire.errors import KeyExprError
from policylink.wire.keys import client_segment

CA_CERT, CA_KEY = "ca.pem", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
ROUTER_CERT, ROUTER_KEY = "router.pem", "router.key"
ROBOTS_DIR = "robots"
CA_COMMON_NAME = "policylink fleet CA"
SERVER_COMMON_NAME = "policylink-server"
ROUTER_COMMON_NAME = "policylink-router"
DEFAULT_NAMES = ("localhost", "127.0.0.1")
CA_DAYS = 3650
LEAF_DAYS = 825
# Clocks on robots drift; a certificate valid from an hour ago is not refused by one running
# slightly behind the machine that issued it.
_BACKDATE = dt.timedelta(hours=1)


class CertError(ValueError):
    """Certificates that cannot be made as asked; the message says what to change."""


@dataclass(frozen=True)
class Authority:
    """The CA that signs every certificate of a fleet."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass
class Issued:
    """What one `issue_fleet` run did: files written, and files kept because they existed."""

    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    robots: list[str] = field(default_factory=list)


def robot_id(value: str) -> str:
    """A robot's common name: its client id, refused (never rewritten) if not a key segment."""
    try:
        return client_segment(value)
    except KeyExprError as exc:
        raise CertError(str(exc)) from None


def server_name(value: str) -> x509.GeneralName:
    """A subject alternative name: an IP address if it parses as one, else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        pass
    labels = value.split(".")
    if not value or len(value) > 253 or not all(_dns_label(label) for label in labels):
        raise CertError(
            f"server name {value!r} is neither an IP address nor a DNS name (letters, digits "
            "and '-' in dot-separated labels, '*' only as a whole first label)"
        )
    return x509.DNSName(value)


def _dns_label(label: str) -> bool:
    if label == "*":
        return True
    return 0 < len(label) <= 63 and label.strip("-") == label and label.replace("-", "").isalnum()


def load_or_create_ca(out: Path, *, force: bool = False, days: int = CA_DAYS) -> Authority:
    """The CA in `out` (`ca.pem`, `ca.key`), created when absent or when `force`."""
    cert_path, key_path = out / CA_CERT, out / CA_KEY
    if not force and (cert_path.exists() or key_path.exists()):
        return load_ca(out)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_key(key_path, key)
    write_certificate(cert_path, certificate)
    return Authority(certificate, key)


def load_ca(out: Path) -> Authority:
    """The CA already in `out`, checked to be a CA whose key matches its certificate."""
    cert_path, key_path = out / CA_CERT, out / CA_KEY
    for path in (cert_path, key_path):
        if not path.is_file():
            raise CertError(
                f"{path} is missing but its partner is there: restore it, or pass --force to "
                "make a new CA (every certificate it signed stops being accepted)"
            )
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise CertError(f"cannot read the CA in {out}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertError(f"{key_path} is not an EC private key; policylink certs makes P-256 keys")
    if key.public_key().public_numbers() != certificate.public_key().public_numbers():
        raise CertError(f"{key_path} is not the key of {cert_path}")
    try:
        is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CertError(f"{cert_path} is not a CA certificate")
    return Authority(certificate, key)


def issue(
    authority: Authority,
    common_name: str,
    names: list[x509.GeneralName],
    *,
    days: int = LEAF_DAYS,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf certificate for TLS in both directions (it listens and it dials)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    ca_key_id = x509.SubjectKeyIdentifier.from_public_key(authority.key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(authority.key, hashes.SHA256()), key


def issue_fleet(
    out: Path,
    *,
    robots: list[str],
    server_names: list[str] | None = None,
    router_names: list[str] | None = None,
    force: bool = False,
    days: int = LEAF_DAYS,
) -> Issued:
    """The CA, the server certificate (and a router's, when `router_names`), and one certificate
    per robot, under `out`; existing files are kept unless `force`.

    `robots` lists the robots to add; the result's `robots` is every robot with a certificate
    in `out/robots` afterwards, which is what an ACL generated from this directory must allow.
    """
    ids = [robot_id(value) for value in robots]
    if force:  # a new CA: every robot already here needs a certificate it signs
        ids = list(dict.fromkeys([*existing_robots(out), *ids]))
    servers = _names(server_names)
    routers = _names(router_names) if router_names else None
    out.mkdir(parents=True, exist_ok=True)
    result = Issued()
    ca_existed = (out / CA_CERT).exists()
    authority = load_or_create_ca(out, force=force)
    (result.kept if ca_existed and not force else result.written).extend(
        [out / CA_CERT, out / CA_KEY]
    )
    leaves: list[tuple[str, list[x509.GeneralName], Path, Path]] = [
        (SERVER_COMMON_NAME, servers, out / SERVER_CERT, out / SERVER_KEY)
    ]
    if routers is not None:
        leaves.append((ROUTER_COMMON_NAME, routers, out / ROUTER_CERT, out / ROUTER_KEY))
    robots_dir = out / ROBOTS_DIR
    leaves += [(i, [], robots_dir / f"{i}.pem", robots_dir / f"{i}.key") for i in ids]
    for common_name, names, cert_path, key_path in leaves:
        if not force and cert_path.exists() and key_path.exists():
            result.kept.extend([cert_path, key_path])
            continue
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        certificate, key = issue(authority, common_name, names, days=days)
        write_key(key_path, key)
        write_certificate(cert_path, certificate)
        result.written.extend([cert_path, key_path])
    result.robots = existing_robots(out)
    return result


def existing_robots(out: Path) -> list[str]:
    """Every robot id with a certificate and key under `out/robots`, sorted."""
    robots_dir = out / ROBOTS_DIR
    if not robots_dir.is_dir():
        return []
    found = []
    for cert in sorted(robots_dir.glob("*.pem")):
        if cert.with_suffix(".key").is_file():
            try:
                found.append(client_segment(cert.stem))
            except KeyExprError:
                continue
    return found


def common_name(path: Path) -> str:
    """The common name of the certificate in `path` (what the ACL matches it by)."""
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise CertError(f"{path} has no common name")
    value = names[0].value
    return value if isinstance(value, str) else value.decode()


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """A private key, created with mode 0600 so it is never readable by others, even briefly."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    path.chmod(0o600)


def write_certificate(path: Path, certificate: x509.Certificate) -> None:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _names(values: list[str] | None) -> list[x509.GeneralName]:
    """The given names plus `localhost` and `127.0.0.1`, each once, in order."""
    ordered = list(dict.fromkeys([*(values or []), *DEFAULT_NAMES]))
    return [server_name(value) for value in ordered]


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
