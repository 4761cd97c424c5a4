"""The exporter-toolkit web config: valid files load; every broken one is one clear error naming the problem."""

from __future__ import annotations

import ssl
from pathlib import Path

import bcrypt
import pytest

from exporter.web.config import load_web_config, ssl_context
from slicewise.errors import BadInput
from tests.exporter.certs import server_certificate

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)  # as htpasswd -B


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def test_empty_file_means_plain_http(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, ""))
    assert config.tls_server_config is None and config.basic_auth_users == {}
    assert ssl_context(config) is None


def test_full_file_with_relative_paths(tmp_path: Path) -> None:
    ca, server = server_certificate(tmp_path)
    client_ca = tmp_path / "client-ca.crt"
    client_ca.write_bytes(ca.files.cert.read_bytes())
    text = f"""
tls_server_config:
  cert_file: {server.cert.name}
  key_file: {server.key.name}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: client-ca.crt
  client_allowed_sans: [prometheus.monitoring.svc]
  min_version: TLS13
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
http_server_config:
  http2: false
  headers:
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  prometheus: '{HASH}'
"""
    config = load_web_config(write(tmp_path, text))
    tls = config.tls_server_config
    assert tls is not None
    assert tls.cert_file == server.cert and tls.client_ca_file == client_ca  # relative to the config file
    context = ssl_context(config)
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert config.basic_auth_users == {"prometheus": HASH}
    assert config.http_server_config.headers == {"Strict-Transport-Security": "max-age=31536000"}


def test_inline_certificate_and_key(tmp_path: Path) -> None:
    _, server = server_certificate(tmp_path)
    cert = server.cert.read_text().replace("\n", "\n    ")
    key = server.key.read_text().replace("\n", "\n    ")
    config = load_web_config(write(tmp_path, f"tls_server_config:\n  cert: |\n    {cert}\n  key: |\n    {key}\n"))
    assert ssl_context(config) is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tls_server_config: [\n", "not valid YAML"),
        ("- a\n- b\n", "mapping at the top level"),
        ("tls_sever_config: {}\n", "tls_sever_config: Extra inputs are not permitted"),
        ("tls_server_config: {key_file: k}\n", "exactly one of cert_file and cert"),
        ("tls_server_config: {cert_file: c}\n", "exactly one of key_file and key"),
        ("tls_server_config: {cert_file: c, key_file: k}\n", "c does not exist"),
        (
            "tls_server_config: {cert_file: c, key_file: k, client_auth_type: RequireAndVerifyClientCert}\n",
            "needs client_ca_file",
        ),
        ("tls_server_config: {cert_file: c, key_file: k, client_auth_type: RequestClientCert}\n", "not supported"),
        ("tls_server_config: {cert_file: c, key_file: k, client_auth_type: Sometimes}\n", "client_auth_type"),
        ("tls_server_config: {cert_file: c, key_file: k, min_version: TLS13, max_version: TLS12}\n", "above"),
        ("tls_server_config: {cert_file: c, key_file: k, cipher_suites: [TLS_NOPE]}\n", "unknown cipher suite"),
        ("tls_server_config: {cert_file: c, key_file: k, curve_preferences: [X25519]}\n", "curve_preferences"),
        ("basic_auth_users: {prometheus: plaintext}\n", "not a bcrypt hash"),
        ("http_server_config: {headers: {Server: x}}\n", "cannot be set"),
    ],
)
def test_broken_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(BadInput, match=r"web\.config\.file") as caught:
        load_web_config(write(tmp_path, text))
    assert message in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot read it"):
        load_web_config(tmp_path / "nope.yml")


def test_key_that_does_not_match_the_certificate(tmp_path: Path) -> None:
    _, server = server_certificate(tmp_path)
    (tmp_path / "other").mkdir()
    _, other = server_certificate(tmp_path / "other")
    config = load_web_config(
        write(tmp_path, f"tls_server_config: {{cert_file: {server.cert}, key_file: {other.key}}}\n")
    )
    with pytest.raises(BadInput, match="cannot load the TLS certificate"):
        ssl_context(config)
