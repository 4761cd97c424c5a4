"""Run the advisor on the configured source: a history file through ``advisor.pipeline.recommend``, or Prometheus
with the configured authentication (basic or bearer, a private CA) through the same stages the pipeline uses.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime

from advisor.deliver.secrets import read_secret
from advisor.model import Recommendation, Window
from advisor.schedule.config import PrometheusSourceConfig, ScheduleConfig


def recommend_from_config(config: ScheduleConfig, now: datetime | None = None) -> Recommendation:
    from advisor.pipeline import recommend

    source = config.source
    if source.history is not None:
        return recommend(source.history, config.window, config.seed)
    assert source.prometheus is not None
    return _from_prometheus(source.prometheus, config, now or datetime.now(UTC))


def _from_prometheus(p: PrometheusSourceConfig, config: ScheduleConfig, now: datetime) -> Recommendation:
    """``advisor.pipeline.load_prometheus`` with authentication: features, then the GPUs seen, then decisions."""
    from advisor.history.prometheus import PrometheusClient, PrometheusSource
    from advisor.pipeline import prometheus_gpus, recommend_from_features

    auth: dict[str, str | None] = {}
    if p.username is not None:
        auth = {
            "username": p.username,
            "password": read_secret("Prometheus password", p.password_env, p.password_file).reveal(),
        }
    elif p.bearer_token_env is not None or p.bearer_token_file is not None:
        token = read_secret("Prometheus bearer token", p.bearer_token_env, p.bearer_token_file)
        auth = {"bearer_token": token.reveal()}
    # a context, not the CA file's path: httpx deprecates verify=<str>
    verify: bool | ssl.SSLContext = ssl.create_default_context(cafile=str(p.ca_file)) if p.ca_file else True
    timeout = p.timeout.total_seconds()
    span = Window(start=now - config.window, end=now)
    with PrometheusSource(p.url, timeout=timeout, verify=verify, **auth) as source:  # type: ignore[arg-type]
        features = source.features(span)
    with PrometheusClient(p.url, timeout=timeout, verify=verify, **auth) as client:  # type: ignore[arg-type]
        gpus_now, gpus_per_node = prometheus_gpus(client, span)
    return recommend_from_features(
        features,
        window=span,
        source=p.url,
        gpus_now=gpus_now,
        gpus_per_node=gpus_per_node,
        seed=config.seed,
    )
