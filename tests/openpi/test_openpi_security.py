"""The OpenPI endpoint's security: wss from the manifest's certificate, no API key in clear text
beyond loopback, failed keys throttled per address, a frame cap from the policy, /healthz that
follows the pipeline, and nothing a client sends becomes a metrics label."""

from __future__ import annotations

import datetime as dt
import http
import ipaddress
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import websockets.sync.client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from policylink.client.links.openpi import OpenPILink
from policylink.server.manifest import Manifest, ManifestError
from policylink.server.openpi_settings import OpenPISettings
from policylink.server.surfaces.openpi import OpenPIServer
from policylink.wire import ActionChunk, SessionAck
from policylink.wire.openpi.msgpack_numpy import packb, unpackb
from tests.openpi.conftest import libero_obs
from tests.openpi.test_openpi_client import (
    PROBE_LAYOUT,
    Replies,
    header,
    observation,
    open_request,
)
from tests.support.waiting import wait_for

KEY = "s3cret"


# --- a CA and a server certificate for 127.0.0.1, made here ------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    issuer_name = _name(subject) if issuer is None else issuer[0].subject
    signing_key = key if issuer is None else issuer[1]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True
        ).add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    else:
        builder = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        )
    return builder.sign(signing_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`ca` (the trust anchor a client needs), `cert` and `key` (the server's), as PEM files."""
    folder = tmp_path_factory.mktemp("openpi-tls")
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _certificate("policylink test CA", ca_key, None)
    server = _certificate("policylink-server", server_key, (ca, ca_key))
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(_pem(ca))
    paths["cert"].write_bytes(_pem(server))
    paths["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def tls(certs: dict[str, Path]) -> dict[str, str]:
    return {"tls_cert": str(certs["cert"]), "tls_key": str(certs["key"])}


def wss_url(served) -> str:
    return f"wss://127.0.0.1:{served.openpi.port}/"


# --- wss ---------------------------------------------------------------------------------------


def test_the_stock_openpi_client_works_over_wss(serve, certs, monkeypatch):
    """openpi-client takes no CA argument; the default context reads SSL_CERT_FILE."""
    served = serve(openpi=tls(certs), api_key=KEY)
    assert served.openpi.urls[0].startswith("wss://")
    monkeypatch.setenv("SSL_CERT_FILE", str(certs["ca"]))
    client = WebsocketClientPolicy(wss_url(served), api_key=KEY)
    try:
        assert client.infer(libero_obs([6.0, 0.0, 0.0]))["actions"][0, 0] == 6
    finally:
        client._ws.close()


def test_a_raw_client_with_its_own_ca_speaks_wss(serve, certs):
    served = serve(openpi=tls(certs))
    context = ssl.create_default_context(cafile=str(certs["ca"]))
    with websockets.sync.client.connect(wss_url(served), ssl=context) as ws:
        metadata = unpackb(ws.recv())
        ws.send(packb(libero_obs([2.0, 0.0, 0.0])))
        reply = unpackb(ws.recv())
    assert metadata["server"] == "policylink"
    assert reply["actions"][0, 0] == 2


def test_policylinks_openpi_link_works_over_wss(serve, certs, monkeypatch):
    served = serve(openpi=tls(certs), policy_params={"state_dim": 3})
    monkeypatch.setenv("SSL_CERT_FILE", str(certs["ca"]))
    replies = Replies()
    link = OpenPILink(wss_url(served))
    try:
        link.connect(replies)
        assert isinstance(link.handshake(open_request(PROBE_LAYOUT), timeout_s=5), SessionAck)
        link.send(header(1), observation([7.0, 0.0, 0.0]))
        _, chunk = replies.next()
        assert isinstance(chunk, ActionChunk) and chunk.chunk_robot[0, 0] == 7
    finally:
        link.close()


def test_a_client_that_does_not_trust_the_certificate_is_refused(serve, certs):
    served = serve(openpi=tls(certs))
    with pytest.raises(ssl.SSLCertVerificationError):
        websockets.sync.client.connect(wss_url(served), ssl=ssl.create_default_context())


def test_a_certificate_that_cannot_be_loaded_fails_the_start_naming_it(serve, tmp_path, certs):
    missing = {"tls_cert": str(tmp_path / "nope.pem"), "tls_key": str(certs["key"])}
    with pytest.raises(ValueError, match=r"openpi.tls_cert '.*nope.pem'.* cannot be loaded"):
        serve(openpi=missing)


# --- no API key in clear text beyond loopback --------------------------------------------------


def test_an_api_key_on_a_public_host_without_tls_is_refused_at_start_up():
    data = {"openpi": {"enabled": True, "host": "0.0.0.0", "api_key_env": "OPENPI_KEY"}}
    with pytest.raises(ManifestError) as refused:
        Manifest.from_data(data)
    assert "openpi.tls_cert" in str(refused.value)
    assert "openpi.allow_plaintext_api_key" in str(refused.value)


@pytest.mark.parametrize(
    "fields",
    [
        {"host": "0.0.0.0", "api_key_env": "K", "allow_plaintext_api_key": True},
        {"host": "0.0.0.0", "api_key_env": "K", "tls_cert": "c.pem", "tls_key": "k.pem"},
        {"host": "127.0.0.1", "api_key_env": "K"},
        {"host": "::1", "api_key_env": "K"},
        {"host": "localhost", "api_key_env": "K"},
        {"host": "0.0.0.0"},
    ],
    ids=["allowed", "tls", "loopback", "loopback-v6", "localhost", "no-key"],
)
def test_an_api_key_is_allowed_where_it_stays_private(fields: dict):
    OpenPISettings(enabled=True, **fields)


def test_the_surface_refuses_a_plaintext_key_even_when_built_directly():
    settings = OpenPISettings(host="0.0.0.0")
    with pytest.raises(ValueError, match=r"openpi\.allow_plaintext_api_key"):
        OpenPIServer(None, None, settings, api_key=KEY)  # type: ignore[arg-type]


def test_tls_cert_and_key_go_together():
    with pytest.raises(ValueError, match=r"openpi\.tls_cert and openpi\.tls_key"):
        OpenPISettings(tls_cert="server.pem")


# --- failed keys are throttled per address ------------------------------------------------------


def refused_status(url: str, api_key: str | None) -> int:
    headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
    with pytest.raises(InvalidStatus) as refused:
        websockets.sync.client.connect(url, additional_headers=headers)
    return refused.value.response.status_code


def test_an_address_that_keeps_failing_is_locked_out_even_with_the_right_key(serve, client):
    served = serve(api_key=KEY, openpi={"auth_max_failures": 3, "auth_lockout_s": 1.0})
    statuses = [refused_status(served.url(), key) for key in ("a", None, "b")]
    assert statuses == [401, 401, 401]
    assert refused_status(served.url(), KEY) == 429  # the key is not even compared
    assert served.app.metrics.auth_failures._value.get() == 4
    policy = wait_for(lambda: _connects(served.url(), client), what="the lock-out to end")
    assert policy.infer(libero_obs([1.0, 0.0, 0.0]))["actions"][0, 0] == 1


def _connects(url: str, client) -> WebsocketClientPolicy | None:
    try:
        return client(url, api_key=KEY)
    except InvalidStatus:
        return None


def test_a_locked_out_answer_says_when_to_try_again(serve):
    served = serve(api_key=KEY, openpi={"auth_max_failures": 1, "auth_lockout_s": 30.0})
    refused_status(served.url(), "wrong")
    with pytest.raises(InvalidStatus) as refused:
        websockets.sync.client.connect(served.url())
    assert refused.value.response.status_code == 429
    assert 0 < int(refused.value.response.headers["Retry-After"]) <= 30


# --- bounded before allocated --------------------------------------------------------------------


def test_the_frame_cap_follows_the_policy(serve, client):
    served = serve()
    cap = served.openpi.max_frame_bytes
    assert cap < 2 * 1024 * 1024  # two 8x8 cameras, three joints: far below the old 32 MiB
    victim = client(served.url())
    with pytest.raises(ConnectionClosedError) as closed:
        victim.infer(libero_obs([0.0, 0.0, 0.0], padding=np.zeros(cap, np.uint8)))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_a_session_id_too_long_to_keep_is_refused(serve, client):
    policy = client(serve().url())
    with pytest.raises(RuntimeError, match="session_id must be a string of at most 256"):
        policy.infer(libero_obs([0.0, 0.0, 0.0], session_id="s" * 300))


def test_session_ids_and_peers_never_become_metrics_labels(serve, client):
    served = serve()
    policy = client(served.url())
    for key in ("episode-one-4f1c", "episode-two-9a2e"):
        policy.infer(libero_obs([0.0, 0.0, 0.0], session_id=key))
    policy._ws.close()
    wait_for(lambda: served.active_sessions == 0, what="the connection's session to close")
    exposition = served.app.metrics.exposition().decode()
    assert 'reason="session_switch"' in exposition and 'reason="connection"' in exposition
    assert "episode-" not in exposition and "127.0.0.1" not in exposition


# --- /healthz follows the pipeline ----------------------------------------------------------------


def health(served) -> int:
    url = f"http://127.0.0.1:{served.openpi.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_healthz_turns_red_when_the_inference_pipeline_dies(serve):
    served = serve()
    assert health(served) == http.HTTPStatus.OK
    served.app._worker.stop()  # what a pipeline thread dying of a bug looks like from outside
    assert health(served) == http.HTTPStatus.SERVICE_UNAVAILABLE


def test_healthz_turns_red_while_draining(serve):
    served = serve()
    served.app.core.begin_drain()
    assert health(served) == http.HTTPStatus.SERVICE_UNAVAILABLE
