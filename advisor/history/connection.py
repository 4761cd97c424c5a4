"""Where Prometheus is and how to authenticate to it: one value that ``slicewise advise``, the weekly schedule and
``advisor.pipeline.recommend`` pass around, so each of them reaches a protected Prometheus the same way.

Secrets are read by the caller (from a file or an environment variable, never a flag) and kept out of ``repr``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TypedDict

from advisor.history.prometheus import PrometheusClient, PrometheusSource
from slicewise.errors import BadInput
from slicewise.redact import has_userinfo, redact_url, split_userinfo

RAW_STEP = timedelta(minutes=1)
RULES_STEP = timedelta(minutes=5)
STEP_BOUNDS = (timedelta(seconds=15), timedelta(hours=1))  # finer reads samples twice; coarser hides the day's shape


def check_step(step: timedelta) -> None:
    low, high = STEP_BOUNDS
    if not low <= step <= high or step.total_seconds() * 1000 % 1:
        raise ValueError(f"a step of {step} is not between {low} and {high} (in whole milliseconds)")


@dataclass(frozen=True)
class PrometheusConnection:
    url: str  # base URL, http:// or https:// (Mimir: https://mimir/prometheus)
    username: str | None = None  # basic auth, with password
    password: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)  # or a bearer token (Thanos, Mimir, a proxy)
    ca_file: Path | None = None  # a private CA that signed the server's certificate
    timeout_s: float = 60.0  # per request
    tenant: str | None = None  # X-Scope-OrgID (Mimir, Cortex, multi-tenant Thanos)
    recording_rules: bool = False  # read deploy/prometheus/slicewise.rules.yml's per-workload series
    max_samples_per_query: int = 10_000_000  # chunks are sized so that no query holds more
    step: timedelta | None = None  # the advisor's resolution (None: RULES_STEP with recording rules, else RAW_STEP)

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise BadInput(f"{redact_url(self.url)!r} is not an http:// or https:// URL")
        if has_userinfo(self.url):  # user:password@ in the URL: used as basic auth, never shown (slicewise.redact)
            url, username, password = split_userinfo(self.url)
            if self.username is not None or self.bearer_token is not None:
                raise BadInput(f"Prometheus {url}: credentials in the URL and as options: give them one way")
            for name, value in (("url", url), ("username", username), ("password", password)):
                object.__setattr__(self, name, value)
        if self.bearer_token is not None and self.username is not None:
            raise BadInput("Prometheus: give basic auth (username and password) or a bearer token, not both")
        if self.password is not None and self.username is None:
            raise BadInput("Prometheus: a password needs a username")
        if self.step is not None:
            try:
                check_step(self.step)
            except ValueError as exc:
                raise BadInput(f"Prometheus step (--prometheus.step): {exc}") from None

    def _verify(self) -> bool | ssl.SSLContext:
        if self.ca_file is None:
            return True
        try:  # a context, not the file's path: httpx deprecates verify=<str>
            return ssl.create_default_context(cafile=str(self.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise BadInput(f"Prometheus CA file {self.ca_file}: {exc}") from None

    def _options(self) -> _Options:
        return _Options(
            username=self.username,
            password=self.password,
            bearer_token=self.bearer_token,
            timeout=self.timeout_s,
            verify=self._verify(),
            tenant=self.tenant,
        )

    def source(self) -> PrometheusSource:
        """Features per workload: per-sample range queries per chunk, reduced client-side."""
        return PrometheusSource(
            self.url,
            **self._options(),
            recorded=self.recording_rules,
            max_samples_per_query=self.max_samples_per_query,
            step=self.resolution,
        )

    @property
    def resolution(self) -> timedelta:
        """One row per workload and device per this step: the raw series at the exporter's one minute; the
        recording rules, made to be read fast, in 5-minute bins (memory: the bin's peak; compute: its mean and its
        peak, ``PrometheusSource.features``)."""
        if self.step is not None:
            return self.step
        return RULES_STEP if self.recording_rules else RAW_STEP

    def client(self) -> PrometheusClient:
        """Instant queries (the GPUs seen in the window)."""
        return PrometheusClient(self.url, **self._options())


class _Options(TypedDict):
    """What both Prometheus clients take from a connection."""

    username: str | None
    password: str | None
    bearer_token: str | None
    timeout: float
    verify: bool | ssl.SSLContext
    tenant: str | None
