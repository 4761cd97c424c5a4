"""Per-workload features from Prometheus (or Thanos, Mimir, VictoriaMetrics: the Prometheus HTTP API) — server-side.

``PrometheusSource(url).features(window, step)`` asks Prometheus for one summary per workload-device series and
time chunk — ``count_over_time``, ``sum_over_time``, ``min/max_over_time``, ``quantile_over_time`` over the
per-sample series of ``promql.py`` — and puts them together in ``merge.py``. No query returns raw samples: a
fleet of 2,000 workloads over 14 days at 60 s is 40 M samples on the server and about 200,000 numbers on the wire.
The window is cut into chunks so that no query makes the server hold more than ``max_samples_per_query`` samples
(10 M; Prometheus refuses queries over ``--query.max-samples``, 50 M by default): by default the chunk is as long
as that allows for the number of workload-device series, up to the whole window (``chunk_for``).

``step`` should be the scrape interval or a multiple of it: each step reads the last sample scraped within it.

Errors: an unreachable server, a timeout, a 5xx or 429 answer are retried with exponential backoff (``retries``
times); then, or on any other error answer (a bad query, 401/403, a body that is not Prometheus's JSON), one
``JobFailed`` says which URL and what it answered.
"""

from __future__ import annotations

import logging
import math
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from advisor.features import IDLE_GPU_FRACTION
from advisor.history import promql
from advisor.history.merge import SUMMARY_LEVELS, Summary, WorkloadParts, assemble
from advisor.model import Window, WorkloadFeatures
from slicewise import __version__
from slicewise.errors import JobFailed
from slicewise.history_schema import Sharing
from slicewise.progress import progress

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float


class PrometheusClient:
    """The instant-query part of the Prometheus HTTP API, with auth, timeouts, retries and clear errors."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        verify: bool | str | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if bearer_token and (username or password):
            raise ValueError("give basic auth (username, password) or a bearer token, not both")
        self.url = url.rstrip("/")
        self.retries, self.backoff = retries, backoff
        all_headers = {"User-Agent": f"slicewise/{__version__}", **(headers or {})}
        if bearer_token:
            all_headers["Authorization"] = f"Bearer {bearer_token}"
        auth = httpx.BasicAuth(username, password or "") if username else None
        self._http = httpx.Client(
            base_url=self.url, auth=auth, headers=all_headers, timeout=timeout, verify=verify, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, expr: str, at: datetime) -> list[Sample]:
        """An instant query (POST, so that long expressions fit) evaluated at ``at``."""
        data = self._post("/api/v1/query", {"query": expr, "time": f"{at.timestamp():.3f}"})
        if data.get("resultType") != "vector":
            raise JobFailed(f"Prometheus at {self.url} answered a {data.get('resultType')!r}, not a vector")
        out = []
        for item in data.get("result", []):
            labels = dict(item.get("metric", {}))
            labels.pop("__name__", None)
            out.append(Sample(labels, float(item["value"][1])))
        return out

    def metric_names(self, start: datetime, end: datetime) -> set[str]:
        """Names of the metrics with samples between ``start`` and ``end`` (the label values API: index only)."""
        params = {"start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}"}
        names = self._request("GET", "/api/v1/label/__name__/values", params)
        if not isinstance(names, list):
            raise JobFailed(f"Prometheus at {self.url} answered the label values API without a list")
        return {str(n) for n in names}

    def _post(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        data = self._request("POST", path, form)
        if not isinstance(data, dict):
            raise JobFailed(f"Prometheus at {self.url} answered without data")
        return data

    def _request(self, method: str, path: str, fields: dict[str, str]) -> Any:
        attempt = 0
        while True:
            try:
                if method == "POST":
                    response = self._http.post(path, data=fields)
                else:
                    response = self._http.get(path, params=fields)
            except httpx.TransportError as exc:  # refused, reset, DNS, timeout
                if attempt >= self.retries:
                    raise JobFailed(f"Prometheus at {self.url} is unreachable: {_reason(exc)}") from exc
            else:
                if response.status_code not in RETRY_STATUS or attempt >= self.retries:
                    return self._payload(response)
            time.sleep(self.backoff * 2**attempt)
            attempt += 1

    def _payload(self, response: httpx.Response) -> Any:
        if response.status_code in (401, 403):
            raise JobFailed(
                f"Prometheus at {self.url} refused the credentials ({response.status_code}):"
                " check the username and password or the bearer token"
            )
        try:
            body = response.json()
        except ValueError:
            raise JobFailed(
                f"Prometheus at {self.url} answered {response.status_code} with something that is not its API's"
                f" JSON: {response.text[:200]!r} (is the URL the Prometheus base URL?)"
            ) from None
        if response.status_code >= 400 or body.get("status") != "success":
            kind, error = body.get("errorType", "error"), body.get("error", response.reason_phrase)
            raise JobFailed(f"Prometheus at {self.url} answered {response.status_code} ({kind}): {error}")
        for warning in body.get("warnings", []) or []:
            log.warning("Prometheus at %s: %s", self.url, warning)
        return body.get("data")


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------------------------------- queries

_SUMMARY_FUNCTIONS = ("count", "sum", "min", "max")


@dataclass(frozen=True)
class _Query:
    """One instant query over one chunk, and where its answer goes."""

    name: str  # what it measures, e.g. "memory:max" or "compute:quantile:0.99"
    expr: str
    at: datetime


def chunks(window: Window, length: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """(start, end] pieces of the window, ``length`` long (the last may be shorter)."""
    start = window.start
    while start < window.end:
        end = min(start + length, window.end)
        yield start, end
        start = end


def _queries(
    window: Window,
    step: timedelta,
    chunk: timedelta,
    src: promql.Sources,
    strict: bool = False,
    recorded: bool = False,
) -> list[_Query]:
    s = promql.Sampler.strict(step) if strict else promql.INSTANT
    if recorded:
        memory, compute = promql.recorded_memory(s, src), promql.recorded_compute(s, src)
    else:
        memory, compute = promql.device_memory(s, src), promql.device_compute(s, src)
    counted: dict[str, str] = {"timeslice": promql.device_timeslice(s, src)}
    if src.slicewise:
        counted["mps"] = promql.device_mps(s)
    out = []
    for start, end in chunks(window, chunk):
        span = end - start - timedelta(milliseconds=1)  # (start, end]: a sample at `start` is the previous chunk's

        def over(function: str, expr: str, quantile: float | None = None, span: timedelta = span) -> str:
            return promql.over_time(function, expr, span, step, quantile=quantile)

        for kind, expr in (("memory", memory), ("compute", compute)):
            out += [_Query(f"{kind}:{f}", over(f, expr), end) for f in _SUMMARY_FUNCTIONS]
            out += [_Query(f"{kind}:quantile:{q!r}", over("quantile", expr, q), end) for q in SUMMARY_LEVELS]
        out.append(_Query("compute:squares", over("sum", promql.squared(compute)), end))
        out.append(_Query("compute:active", over("count", promql.active(compute, IDLE_GPU_FRACTION)), end))
        out += [_Query(f"sharing:{name}", over("count", expr), end) for name, expr in counted.items()]
        if src.slicewise:
            out.append(_Query("processes", over("max", promql.device_processes(s)), end))
            out.append(_Query("meta:model", promql.gpu_models(end - start), end))
            out.append(_Query("meta:profile", promql.mig_profiles(end - start), end))
        # per workload, whatever the model: cheap, and exact for the workloads on one model in the chunk
        out.append(_Query("devices", over("max", promql.devices(memory, by="workload")), end))
        out.append(_Query("present", over("count", promql.presence(memory, by="workload")), end))
    return out


def _per_model_queries(
    ends: set[datetime],
    window: Window,
    step: timedelta,
    chunk: timedelta,
    src: promql.Sources,
    strict: bool,
    recorded: bool,
) -> list[_Query]:
    """Devices and presence per workload and GPU model, for the chunks where a workload ran on two models."""
    s = promql.Sampler.strict(step) if strict else promql.INSTANT
    with_model = promql.recorded_memory(s, src) if recorded else promql.device_memory_with_model(s, src)
    out = []
    for start, end in chunks(window, chunk):
        if end in ends:
            span = end - start - timedelta(milliseconds=1)
            out.append(_Query("devices", promql.over_time("max", promql.devices(with_model), span, step), end))
            out.append(_Query("present", promql.over_time("count", promql.presence(with_model), span, step), end))
    return out


class PrometheusSource:
    """Features per workload and GPU model from Prometheus's HTTP API (module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        chunk: timedelta | None = None,
        max_samples_per_query: int = 10_000_000,
        strict: bool = False,
        recorded: bool = False,
        concurrency: int = 4,
        verify: bool | str | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.chunk, self.concurrency, self.max_samples = chunk, concurrency, max_samples_per_query
        self.strict = strict  # data without staleness markers: read each step's own sample only (promql.Sampler)
        self.recorded = recorded  # read the recording rules' per-sample series (rules loaded for the whole window)
        self._client = PrometheusClient(
            url,
            username=username,
            password=password,
            bearer_token=bearer_token,
            headers=headers,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            verify=verify,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def features(self, window: Window, step: timedelta = timedelta(seconds=60)) -> list[WorkloadFeatures]:
        """Features of every workload seen in (window.start, window.end], sorted by workload and GPU model."""
        if step <= timedelta(0) or window.end <= window.start:
            raise ValueError(f"need a positive step and a non-empty window (got {step}, {window})")
        src = self.sources(window)
        if not (src.slicewise or src.dcgm_memory):
            return []
        chunk = self.chunk or self.chunk_for(window, step)
        queries = _queries(window, step, chunk, src, self.strict, self.recorded)
        answers = self._run(queries)
        parts, spanning = _gather(queries, answers)
        if spanning:  # a workload on two GPU models in a chunk: count its devices and steps per model
            extra = _per_model_queries(spanning, window, step, chunk, src, self.strict, self.recorded)
            queries, answers = queries + extra, answers + self._run(extra)
            parts, _ = _gather(queries, answers)
        expected = _steps_in(window, step)
        return sorted((assemble(p, expected) for p in parts.values() if p.memory), key=lambda f: f.key)

    def _run(self, queries: list[_Query]) -> list[list[Sample]]:
        """Answers in the queries' order, ``concurrency`` at a time, with a progress bar on a terminal."""
        answers: dict[int, list[Sample]] = {}
        with progress("Querying Prometheus", total=len(queries)) as bar:
            pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="prometheus")
            try:
                pending = {pool.submit(self._client.query, q.expr, q.at): i for i, q in enumerate(queries)}
                for done in as_completed(pending):
                    answers[pending[done]] = done.result()
                    bar.advance()
            finally:  # on the first failure, do not wait for the other queries' retries
                pool.shutdown(wait=True, cancel_futures=True)
        return [answers[i] for i in range(len(queries))]

    def sources(self, window: Window) -> promql.Sources:
        """Which exporters' series the window has, so that the queries leave out what cannot match."""
        try:
            return promql.Sources.present(self._client.metric_names(window.start, window.end))
        except JobFailed as exc:  # a proxy without the label values API: ask for everything
            log.info("cannot list metric names (%s); querying every source", exc)
            return promql.ALL_SOURCES

    def chunk_for(self, window: Window, step: timedelta) -> timedelta:
        """The longest chunk (whole hours, at most the window) whose subqueries hold at most ``max_samples``.

        Sized by the workload-device series there are at the window's end (a cheap instant query); one chunk
        over the whole window keeps quantiles exact (``merge.py``), so fewer, longer chunks are better.
        """
        answer = self._client.query(f"count({promql.device_memory(promql.INSTANT)})", window.end)
        series = max(int(answer[0].value) if answer else 1, 1)
        steps = max(self.max_samples // series, 1)
        hours = max(int(steps * step.total_seconds() // 3600), 1)
        return min(timedelta(hours=hours), window.end - window.start)


def _steps_in(window: Window, step: timedelta) -> float:
    """Sampling steps in (start, end]: step multiples since the epoch, as subqueries place them."""
    ms = step.total_seconds() * 1000
    return float(math.floor(window.end.timestamp() * 1000 / ms) - math.floor(window.start.timestamp() * 1000 / ms))


# ---------------------------------------------------------------------------------------------------- assembly


_DEVICE_KEY = ("workload", "namespace", "gpu_uuid", "gi", "ci")


def _series_key(labels: dict[str, str]) -> tuple[str, ...]:
    """One workload on one device, whichever expression's labels (lean, recorded, dcgm) the series came with."""
    return tuple(labels.get(name, "") for name in _DEVICE_KEY)


Series = tuple[str, ...]  # (workload, namespace, gpu_uuid, gi, ci): one workload on one device


@dataclass
class _Collected:
    """The answers of one round of queries, sorted by what they describe."""

    numbers: dict[tuple[datetime, str, Series], dict[str, float]] = field(default_factory=dict)  # chunk, kind, series
    labels_of: dict[Series, dict[str, str]] = field(default_factory=dict)  # richest label set seen (model, profile)
    per_workload: dict[tuple[datetime, str, str], dict[str, float]] = field(default_factory=dict)  # chunk, wl, model
    model_of: dict[tuple[datetime, str], str] = field(default_factory=dict)  # (chunk end, gpu_uuid) -> model
    profile_of: dict[tuple[datetime, str, str, str], str] = field(default_factory=dict)  # chunk, uuid, gi, ci


def _collect(queries: list[_Query], answers: list[list[Sample]]) -> _Collected:
    out = _Collected()
    for query, samples in zip(queries, answers, strict=True):
        kind, _, stat = query.name.partition(":")
        for sample in samples:
            labels = sample.labels
            if kind in ("memory", "compute"):
                series = _series_key(labels)
                out.numbers.setdefault((query.at, kind, series), {})[stat] = sample.value
                if len(labels) > len(out.labels_of.get(series, {})):
                    out.labels_of[series] = labels
            elif kind in ("devices", "present"):  # per workload, or per workload and model (second round)
                workload_key = (query.at, labels.get("workload", ""), labels.get("model", ""))
                out.per_workload.setdefault(workload_key, {})[kind] = sample.value
            elif query.name == "meta:model":
                out.model_of[(query.at, labels.get("gpu_uuid", ""))] = labels.get("model", "")
            elif query.name == "meta:profile":
                device = (query.at, labels.get("gpu_uuid", ""), labels.get("gi", ""), labels.get("ci", ""))
                out.profile_of[device] = labels.get("profile", "")
            else:  # sharing:<mode>, processes: per series, beside its memory statistics
                out.numbers.setdefault((query.at, "memory", _series_key(labels)), {})[query.name] = sample.value
    return out


def _gather(
    queries: list[_Query], answers: list[list[Sample]]
) -> tuple[dict[tuple[str, str], WorkloadParts], set[datetime]]:
    """Per (workload, GPU model): its per-series, per-chunk summaries and counts; and the chunks (their ends) in
    which a workload ran on more than one GPU model, whose devices and presence need counting per model."""
    got = _collect(queries, answers)
    parts: dict[tuple[str, str], WorkloadParts] = {}
    models_of: dict[tuple[datetime, str], set[str]] = {}  # (chunk end, workload) -> models it ran on
    for (at, kind, series), stats in got.numbers.items():
        labels = got.labels_of.get(series, dict(zip(_DEVICE_KEY, series, strict=True)))
        uuid = labels.get("gpu_uuid", "")
        model = labels.get("model") or got.model_of.get((at, uuid), "")
        if not labels.get("workload") or "count" not in stats:
            continue
        if not model:
            log.warning("no GPU model for %s on %s (no slicewise_gpu_info): left out", labels["workload"], uuid)
            continue
        models_of.setdefault((at, labels["workload"]), set()).add(model)
        target = parts.setdefault((labels["workload"], model), WorkloadParts(labels["workload"], model))
        summary = _summary(stats, threshold=IDLE_GPU_FRACTION if kind == "compute" else None)
        if kind == "compute":
            target.compute.append(summary)
            continue
        target.memory.append(summary)
        target.namespaces[labels.get("namespace", "")] += summary.count
        if labels.get("gi"):
            device = (at, uuid, labels["gi"], labels.get("ci", ""))
            target.sharing[Sharing.MIG.value] += summary.count
            target.profiles[labels.get("profile") or got.profile_of.get(device, "")] += summary.count
        else:
            mps = int(stats.get("sharing:mps", 0))
            timeslice = int(stats.get("sharing:timeslice", 0))
            target.sharing[Sharing.MPS.value] += mps
            target.sharing[Sharing.TIMESLICE.value] += timeslice
            target.sharing[Sharing.EXCLUSIVE.value] += summary.count - mps - timeslice
        target.processes = max(target.processes, int(stats.get("processes", 1)))
    return parts, _count_per_workload(got, parts, models_of)


def _count_per_workload(
    got: _Collected, parts: dict[tuple[str, str], WorkloadParts], models_of: dict[tuple[datetime, str], set[str]]
) -> set[datetime]:
    """Add devices and presence to the parts; the chunks that need them counted per model (a second round)."""
    spanning: set[datetime] = set()
    counted_per_model = {(at, workload) for at, workload, model in got.per_workload if model}
    for (at, workload, counted_model), stats in got.per_workload.items():
        models = models_of.get((at, workload), set())
        if counted_model and len(models) <= 1:
            continue  # the second round counts everyone; its figures are needed only where the first's are not
        model = counted_model
        if not counted_model:  # counted per workload: it belongs to the one model the workload ran on in the chunk
            if len(models) > 1:
                if (at, workload) not in counted_per_model:
                    spanning.add(at)
                continue
            model = next(iter(models), "")
        if (workload, model) in parts:
            target = parts[(workload, model)]
            target.present_steps += int(stats.get("present", 0))
            target.devices = max(target.devices, int(stats.get("devices", 1)))
    return spanning


def _summary(stats: dict[str, float], threshold: float | None) -> Summary:
    return Summary(
        count=int(stats["count"]),
        total=stats.get("sum", 0.0),
        low=stats.get("min", math.nan),
        high=stats.get("max", math.nan),
        quantiles={q: stats.get(f"quantile:{q!r}", math.nan) for q in SUMMARY_LEVELS},
        squares=stats.get("squares", 0.0),
        active=int(stats.get("active", 0)),
        threshold=threshold,
    )
