"""``--web.config.file``: the Prometheus exporter-toolkit web configuration (TLS and basic auth), read and checked.

The format is the one node_exporter and every other Prometheus exporter read
(https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md), so one file and one habit
serve all of them:

    tls_server_config:
      cert_file: /etc/slicewise/tls.crt          # or inline: cert: "-----BEGIN CERTIFICATE-----..."
      key_file: /etc/slicewise/tls.key           # or inline: key: "..."
      client_auth_type: RequireAndVerifyClientCert   # NoClientCert (default) | VerifyClientCertIfGiven | ...
      client_ca_file: /etc/slicewise/clients-ca.crt
      client_allowed_sans: [prometheus.monitoring.svc]
      min_version: TLS12                          # TLS10 | TLS11 | TLS12 (default) | TLS13
      max_version: TLS13
      cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]   # Go names; TLS 1.2 and below only
      prefer_server_cipher_suites: true
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}
    basic_auth_users:
      prometheus: $2y$10$...                     # bcrypt hash, e.g. from `htpasswd -nBC 10 "" | tr -d ':\\n'`

What Python's TLS cannot do the way Go's does is refused with a message rather than silently weakened:
``RequestClientCert`` and ``RequireAnyClientCert`` (accepting client certificates without verifying them) and
``curve_preferences``.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from slicewise.errors import BadInput

_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's crypto/tls names (what exporter-toolkit accepts) -> OpenSSL's names for the same suites (IANA registry).
GO_CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}

# The response headers exporter-toolkit lets a config set; others would collide with what the server sends.
ALLOWED_HEADERS = (
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
)

ClientAuthType = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsServerConfig(_Strict):
    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str | None = None
    key: str | None = None
    client_auth_type: ClientAuthType = "NoClientCert"
    client_ca_file: Path | None = None
    client_allowed_sans: tuple[str, ...] = ()
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()


class HttpServerConfig(_Strict):
    http2: bool = True  # accepted for compatibility; this server speaks HTTP/1.1
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _known_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if name not in ALLOWED_HEADERS:
                raise ValueError(f"header {name!r} cannot be set (allowed: {', '.join(ALLOWED_HEADERS)})")
        return headers


class WebConfig(_Strict):
    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig = Field(default_factory=HttpServerConfig)
    basic_auth_users: dict[str, str] = Field(default_factory=dict)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not str(hashed).startswith(("$2a$", "$2b$", "$2y$")):
                raise ValueError(f"the password of {user!r} is not a bcrypt hash ($2a$/$2b$/$2y$...)")
        return users


def load_web_config(path: Path) -> WebConfig:
    """Read and check the file; relative paths in it are relative to the file, as exporter-toolkit has them."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise BadInput(f"--web.config.file {path}: cannot read it: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise BadInput(f"--web.config.file {path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise BadInput(f"--web.config.file {path}: expected a mapping at the top level")
    try:
        config = WebConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadInput(f"--web.config.file {path}: {where}: {first['msg'].removeprefix('Value error, ')}") from exc
    tls = config.tls_server_config
    if tls is not None:
        tls = tls.model_copy(
            update={
                name: (path.parent / value) if value is not None and not value.is_absolute() else value
                for name in ("cert_file", "key_file", "client_ca_file")
                if (value := getattr(tls, name)) is not None
            }
        )
        config = config.model_copy(update={"tls_server_config": tls})
        _check_tls(path, tls)
    return config


def _check_tls(path: Path, tls: TlsServerConfig) -> None:
    problem = None
    if (tls.cert_file is None) == (tls.cert is None):
        problem = "give exactly one of cert_file and cert"
    elif (tls.key_file is None) == (tls.key is None):
        problem = "give exactly one of key_file and key"
    elif tls.client_auth_type in ("RequestClientCert", "RequireAnyClientCert"):
        problem = (
            f"client_auth_type {tls.client_auth_type} (unverified client certificates) is not supported; "
            "use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
        )
    elif tls.client_auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") and not tls.client_ca_file:
        problem = f"client_auth_type {tls.client_auth_type} needs client_ca_file"
    elif tls.client_ca_file is not None and tls.client_auth_type == "NoClientCert":
        problem = "client_ca_file is set but client_auth_type is NoClientCert: say how clients are checked"
    elif tls.client_allowed_sans and tls.client_auth_type != "RequireAndVerifyClientCert":
        problem = "client_allowed_sans needs client_auth_type RequireAndVerifyClientCert"
    elif _TLS_VERSIONS[tls.min_version] > _TLS_VERSIONS[tls.max_version]:
        problem = f"min_version {tls.min_version} is above max_version {tls.max_version}"
    elif unknown := [s for s in tls.cipher_suites if s not in GO_CIPHER_SUITES]:
        problem = f"unknown cipher suite {unknown[0]} (known: {', '.join(GO_CIPHER_SUITES)})"
    elif tls.curve_preferences:
        problem = "curve_preferences is not supported by slicewise-exporter (Python's TLS picks the curves)"
    if problem:
        raise BadInput(f"--web.config.file {path}: tls_server_config: {problem}")
    for name in ("cert_file", "key_file", "client_ca_file"):
        file = getattr(tls, name)
        if file is not None and not file.is_file():
            raise BadInput(f"--web.config.file {path}: tls_server_config.{name}: {file} does not exist")


@contextmanager
def _pem_file(inline: str | None, file: Path | None) -> Iterator[str | None]:
    """A path to the PEM, writing inline PEM to a private temporary file that is gone once it has been loaded."""
    if inline is None:
        yield str(file) if file is not None else None
        return
    fd, name = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(inline)
        yield name
    finally:
        os.unlink(name)


def ssl_context(config: WebConfig) -> ssl.SSLContext | None:
    """The server's TLS context, or None for plain HTTP."""
    tls = config.tls_server_config
    if tls is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    context.maximum_version = _TLS_VERSIONS[tls.max_version]
    try:
        with _pem_file(tls.cert, tls.cert_file) as cert, _pem_file(tls.key, tls.key_file) as key:
            assert cert is not None
            context.load_cert_chain(cert, key)
        if tls.client_ca_file is not None:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
    except (ssl.SSLError, OSError) as exc:
        raise BadInput(f"--web.config.file: cannot load the TLS certificate, key or client CA: {exc}") from exc
    context.verify_mode = {
        "NoClientCert": ssl.CERT_NONE,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }[tls.client_auth_type]
    if tls.cipher_suites:
        context.set_ciphers(":".join(GO_CIPHER_SUITES[s] for s in tls.cipher_suites))
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    return context
