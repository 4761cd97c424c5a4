"""Per-workload features from Prometheus (or Thanos, Mimir, VictoriaMetrics: the Prometheus HTTP API).

``PrometheusSource(url).features(window, step)`` cuts the window into chunks and, per chunk, sends a few **range
queries at the step** — the raw process series (memory, SM activity), each MIG device's activity, the GPUs running
MPS, dcgm-exporter's part — and reduces the answers client-side (``reduce.py``: process series added up per
workload and device, MIG activity split among its workloads) to the history file's features. The server reads
each raw sample about once (the old design's 29 ``*_over_time`` subqueries each recomputed it), and range
queries are what the Thanos and Mimir query frontends split by day and cache. With ``recorded=True`` the memory
and compute series are the recording rules' (deploy/prometheus/slicewise.rules.yml), read as plain selectors.

Chunks: as long as possible (exact quantiles need no merging) while every query holds at most
``max_samples_per_query`` samples (10 M; Prometheus refuses queries over ``--query.max-samples``, 50 M by default):
``chunk_for`` counts the raw series over the whole window with the series API (index only, no samples read) and
divides. Prometheus also refuses range queries of more than 11,000 steps, so at 60 s a chunk is at most 7 days.

Quantiles: exact (numpy's linear rule, which is ``quantile_over_time``'s and the file's) while the samples held
client-side stay under ``exact_samples`` (20 M, about 160 MB); beyond, they are folded into per-chunk summaries
with a quantile every 1 % and merged (``merge.py``, ``reduce.py``).

Errors: connection refused or reset, 429, 502 and 503 are retried with exponential backoff (``retries`` times);
a query that outlives the client's timeout, or that the server (504, or its ``--query.timeout``) stopped as too
slow, is **not** retried — the server may still be computing it — but reported as slow, with the query and the
timeout to raise. Any other error answer (a bad query, 401/403, a body that is not Prometheus's JSON) is one
``JobFailed`` saying which URL and what it answered.
"""

from __future__ import annotations

import logging
import math
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import httpx
import pandas as pd

from advisor.history import promql
from advisor.history.matrix import Series, parse_matrix
from advisor.history.merge import assemble
from advisor.history.reduce import ChunkData, Reducer, Steps, device_key, max_by, sum_by_device
from advisor.history.timeline import Timeline
from advisor.model import Window, WorkloadFeatures
from slicewise import __version__
from slicewise.errors import JobFailed
from slicewise.progress import progress

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 502, 503})
MAX_STEPS = 11_000  # Prometheus refuses range queries with more points per series
BINNED_ABOVE = timedelta(seconds=60)  # steps longer than the exporter's scrape interval are read as bins
PROCESS_STEPS = 10  # process counts are read every 10th step (they change when a pod restarts, not per minute)


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float


@dataclass
class QueryStats:
    """What the queries cost the server (with ``stats=True``: Prometheus's ``stats=all``)."""

    queries: int = 0
    samples_read: int = 0  # totalQueryableSamples, summed
    peak_samples: int = 0  # the most samples one query held at once
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stats: dict[str, Any]) -> None:
        samples = stats.get("samples", {}) if isinstance(stats, dict) else {}
        with self._lock:
            self.queries += 1
            self.samples_read += int(samples.get("totalQueryableSamples", 0))
            self.peak_samples = max(self.peak_samples, int(samples.get("peakSamples", 0)))


class Slow(JobFailed):
    """The server took longer than a timeout: raise it, or ask less per query."""


class PrometheusClient:
    """Instant and range queries and the series API, with auth, a tenant, timeouts, retries and clear errors."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        headers: dict[str, str] | None = None,
        tenant: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        verify: bool | str | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
        stats: bool = False,
        compress: bool = False,
    ) -> None:
        if bearer_token and (username or password):
            raise ValueError("give basic auth (username, password) or a bearer token, not both")
        self.url = url.rstrip("/")
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        all_headers = {"User-Agent": f"slicewise/{__version__}", **(headers or {})}
        if not compress:  # gzip costs the server ~2 s of CPU per 20 MB answer; it pays only over a slow network
            all_headers.setdefault("Accept-Encoding", "identity")
        if tenant:
            all_headers["X-Scope-OrgID"] = tenant  # Mimir, Cortex, Thanos with tenancy
        if bearer_token:
            all_headers["Authorization"] = f"Bearer {bearer_token}"
        auth = httpx.BasicAuth(username, password or "") if username else None
        self._http = httpx.Client(
            base_url=self.url, auth=auth, headers=all_headers, timeout=timeout, verify=verify, transport=transport
        )
        self.stats = QueryStats() if stats else None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, expr: str, at: datetime) -> list[Sample]:
        """An instant query (POST, so that long expressions fit) evaluated at ``at``."""
        body = self._request("POST", "/api/v1/query", self._with_stats({"query": expr, "time": _ts(at)}), expr)
        data = self._payload(body)
        if not isinstance(data, dict) or data.get("resultType") != "vector":
            kind = data.get("resultType") if isinstance(data, dict) else None
            raise JobFailed(f"Prometheus at {self.url} answered a {kind!r}, not a vector")
        if self.stats is not None:
            self.stats.add(data.get("stats", {}))
        out = []
        for item in data.get("result", []):
            labels = dict(item.get("metric", {}))
            labels.pop("__name__", None)
            out.append(Sample(labels, float(item["value"][1])))
        return out

    def query_range(self, expr: str, start_ms: int, end_ms: int, step_ms: int) -> list[Series]:
        """A range query, its answer parsed straight into arrays (``matrix.py``)."""
        form = {"query": expr, "start": f"{start_ms / 1000:.3f}", "end": f"{end_ms / 1000:.3f}"}
        form["step"] = f"{step_ms / 1000:.3f}"
        response = self._request("POST", "/api/v1/query_range", self._with_stats(form), expr)
        if response.status_code != 200:
            self._payload(response)  # raises with the server's words
        try:
            series, extra = parse_matrix(response.content)
        except ValueError:
            self._payload(response)
            raise JobFailed(f"Prometheus at {self.url} answered a range query without a matrix") from None
        for warning in extra.get("warnings", []) or []:
            log.warning("Prometheus at %s: %s", self.url, warning)
        if self.stats is not None:
            self.stats.add(extra.get("stats", {}))
        return series

    def series(self, matchers: list[str], start: datetime, end: datetime) -> list[dict[str, str]]:
        """Label sets of the series matching any of ``matchers`` between ``start`` and ``end`` (index only)."""
        form = {"match[]": matchers, "start": _ts(start), "end": _ts(end)}
        data = self._payload(self._request("POST", "/api/v1/series", form, f"series {matchers}"))
        if not isinstance(data, list):
            raise JobFailed(f"Prometheus at {self.url} answered the series API without a list")
        return [dict(item) for item in data]

    def metric_names(self, start: datetime, end: datetime) -> set[str]:
        """Names of the metrics with samples between ``start`` and ``end`` (the label values API: index only)."""
        params = {"start": _ts(start), "end": _ts(end)}
        names = self._payload(self._request("GET", "/api/v1/label/__name__/values", params, "metric names"))
        if not isinstance(names, list):
            raise JobFailed(f"Prometheus at {self.url} answered the label values API without a list")
        return {str(n) for n in names}

    def _with_stats(self, form: dict[str, str]) -> dict[str, str]:
        return {**form, "stats": "all"} if self.stats is not None else form

    def _request(self, method: str, path: str, fields: dict[str, Any], what: str) -> httpx.Response:
        attempt = 0
        while True:
            try:
                if method == "POST":
                    response = self._http.post(path, data=fields)
                else:
                    response = self._http.get(path, params=fields)
            except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout) as exc:
                raise self._slow(what, f"no answer within the {self.timeout:g} s timeout") from exc
            except httpx.TransportError as exc:  # refused, reset, DNS, connect timeout: the query never ran
                if attempt >= self.retries:
                    raise JobFailed(f"Prometheus at {self.url} is unreachable: {_reason(exc)}") from exc
            else:
                if response.status_code == 504 or _server_timeout(response):
                    raise self._slow(what, f"the server gave up ({response.status_code}: {response.text[:200]})")
                if response.status_code not in RETRY_STATUS or attempt >= self.retries:
                    return response
            time.sleep(self.backoff * 2**attempt)
            attempt += 1

    def _slow(self, what: str, how: str) -> Slow:
        shown = what if len(what) <= 300 else what[:300] + " …"
        return Slow(
            f"Prometheus at {self.url} is slow: {how}, for the query {shown!r}. It was not retried (the server may"
            " still be computing it). Raise --prometheus.timeout (and the server's --query.timeout), lower"
            " --prometheus.max-samples so that each query asks less, or use --prometheus.recording-rules"
        )

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


def _ts(at: datetime) -> str:
    return f"{at.timestamp():.3f}"


def _server_timeout(response: httpx.Response) -> bool:
    """Prometheus stopped the query at its own ``--query.timeout`` (503, errorType ``timeout``)."""
    if response.status_code != 503:
        return False
    try:
        return bool(response.json().get("errorType") == "timeout")
    except (ValueError, AttributeError):
        return False


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------------------------------- chunks


def chunks(window: Window, length: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """(start, end] pieces of the window, ``length`` long (the last may be shorter)."""
    start = window.start
    while start < window.end:
        end = min(start + length, window.end)
        yield start, end
        start = end


def steps_of(start: datetime, end: datetime, step: timedelta) -> Steps | None:
    """The step multiples since the epoch in (start, end], as subqueries and the file's coverage count them."""
    ms = round(step.total_seconds() * 1000)
    first = (math.floor(start.timestamp() * 1000) // ms + 1) * ms
    last = math.floor(end.timestamp() * 1000) // ms * ms
    return Steps(first, ms, (last - first) // ms + 1) if last >= first else None


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
        tenant: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        chunk: timedelta | None = None,
        max_samples_per_query: int = 10_000_000,
        exact_samples: int = 20_000_000,
        strict: bool = False,
        recorded: bool = False,
        step: timedelta = timedelta(seconds=60),
        concurrency: int = 2,
        verify: bool | str | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
        stats: bool = False,
        show_progress: bool | None = None,
    ) -> None:
        self.url = url
        self.chunk, self.concurrency, self.max_samples = chunk, concurrency, max_samples_per_query
        self.exact_samples, self.show_progress = exact_samples, show_progress
        self.strict = strict  # data without staleness markers: read each step's own sample only (promql.Sampler)
        self.recorded = recorded  # read the recording rules' per-sample series
        self.step = step  # one row per workload and device per step; coarser than a minute: binned (features())
        self.folds = 0  # after features(): times the samples were folded into summaries (0: quantiles exact)
        self.client = PrometheusClient(
            url,
            username=username,
            password=password,
            bearer_token=bearer_token,
            headers=headers,
            tenant=tenant,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            verify=verify,
            transport=transport,
            stats=stats,
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def features(self, window: Window, step: timedelta | None = None) -> list[WorkloadFeatures]:
        """Features of every workload seen in (window.start, window.end], sorted by workload and GPU model.

        One value per workload and device per ``step`` (default: the source's). A step longer than a minute (the
        exporter's scrape interval) reads each step's *bin* — its samples since the previous step — as their
        maximum for memory (every memory peak is still seen: an upper bound per sample, never less) and their mean
        and maximum for compute, which the compute figures spread back into samples (``features.bin_values``).
        """
        step = step or self.step
        if step <= timedelta(0) or window.end <= window.start:
            raise ValueError(f"need a positive step and a non-empty window (got {step}, {window})")
        names = self._metric_names(window)
        src = promql.Sources.present(names) if names is not None else promql.ALL_SOURCES
        if self.recorded:
            self.check_recorded(window, names)
        if not (src.slicewise or src.dcgm_memory):
            return []
        self._binned = step > BINNED_ABOVE
        self._sampler = promql.Sampler.strict(step) if self.strict or self._binned else promql.INSTANT
        pieces = list(chunks(window, self.chunk or self.chunk_for(window, step, src)))
        # a bin stands for step / scrape interval samples: the exporter's 60 s (a faster scrape only weights each
        # bin's largest value more in the compute quantiles: features._bin_stats)
        per_bin = max(1, round(step / BINNED_ABOVE))
        timeline = Timeline(bin_samples=per_bin) if self.keep_rows else None
        reducer = Reducer(self.exact_samples, bin_samples=per_bin, timeline=timeline)
        with progress("Querying Prometheus (chunks)", total=len(pieces), enabled=self.show_progress) as bar:
            for start, end in pieces:
                steps = steps_of(start, end, step)
                if steps is not None:
                    reducer.add(steps, self._chunk(start, end, steps, src))
                bar.advance()
        self.folds = reducer.folds
        self.rows = reducer.timeline.frame() if reducer.timeline is not None else None
        self.rows_overflow = reducer.timeline is not None and reducer.timeline.overflow
        expected = _steps_in(window, step)
        return sorted((assemble(p, expected) for p in reducer.finish()), key=lambda f: f.key)

    def _queries(self, src: promql.Sources) -> dict[str, str]:
        """The range queries of one chunk: each per-sample series once. Raw process series are added up per
        workload and device here (``reduce.sum_by_device``), not by the server. Where steps read bins, the compute
        series are asked twice: each bin's mean and (``<name>_peak``) its largest (``ChunkData.compute_peak``)."""
        peak = self._sampler.peak()  # one sample per step: the same as the sample
        queries: dict[str, str] = {}
        if self.recorded:
            queries["memory"] = promql.recorded_memory(peak, src)
        else:
            if src.slicewise:
                queries["process_memory"] = peak(promql.PROCESS_MEMORY)
            if src.dcgm_memory:
                queries["memory"] = promql.dcgm_only_memory(peak, src)
        if src.slicewise:
            queries["mps_gpus"] = promql.mps_gpus(peak)
        queries |= self._compute_queries(self._sampler.mean(), src)
        if self._binned:
            queries |= {f"{name}_peak": expr for name, expr in self._compute_queries(peak, src).items()}
        return queries

    def _compute_queries(self, s: promql.Sampler, src: promql.Sources) -> dict[str, str]:
        """The compute series of one chunk, each step read with ``s``."""
        queries: dict[str, str] = {}
        if self.recorded:  # the rules have no dcgm-exporter fallback: that part is read raw, as below
            queries["compute"] = promql.recorded_compute_lean(s, src)
            if src.slicewise and src.dcgm_activity:
                queries["mig_activity"] = promql.mig_activity(s, replace(src, gpm=False))
            return queries
        if src.slicewise:
            queries["process_compute"] = s(promql.GPU_PROCESS_SM)
            if src.gpm:
                queries["gpm"] = s(promql.MIG_SM_ACTIVE)
            if src.dcgm_activity:
                queries["mig_activity"] = promql.mig_activity(s, replace(src, gpm=False))
        if src.dcgm_memory:
            queries["compute"] = promql.dcgm_only_compute(s, src)
        return queries

    _sampler: promql.Sampler = promql.INSTANT
    _binned: bool = False  # each step reads its bin of samples (a step longer than the scrape interval)
    # the per-sample rows behind the last ``features`` call (timeline.py), None past its cap or when not kept
    keep_rows: bool = True
    rows: pd.DataFrame | None = None
    rows_overflow: bool = False

    def _chunk(self, start: datetime, end: datetime, steps: Steps, src: promql.Sources) -> ChunkData:
        """Every query of one chunk (``concurrency`` at a time), as ``reduce.ChunkData``."""
        last = steps.first_ms + (steps.count - 1) * steps.step_ms
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="prometheus") as pool:
            ranged = {
                name: pool.submit(self.client.query_range, expr, steps.first_ms, last, steps.step_ms)
                for name, expr in self._queries(src).items()
            }
            counted = self.recorded and src.slicewise  # raw: the process series are counted as they are added
            processes = pool.submit(self._processes, end, start, steps) if counted else None
            meta = pool.submit(self._meta, start, end) if src.slicewise else None
            try:
                answers = {name: future.result() for name, future in ranged.items()}
                memory, counts = sum_by_device(answers.get("process_memory", []))
                compute, _ = sum_by_device(answers.get("process_compute", []))
                activity = max_by(answers.get("gpm", []), ("gpu_uuid", "gi", "ci"))
                data = ChunkData(
                    memory=memory + answers.get("memory", []),
                    compute=compute + answers.get("compute", []),
                    mig_activity=activity + answers.get("mig_activity", []),
                    mps_gpus=answers.get("mps_gpus", []),
                    processes=counts,
                )
                if "compute_peak" in answers or "process_compute_peak" in answers:
                    data.compute_peak = sum_by_device(answers.get("process_compute_peak", []))[0]
                    data.compute_peak += answers.get("compute_peak", [])
                    peak_activity = max_by(answers.get("gpm_peak", []), ("gpu_uuid", "gi", "ci"))
                    data.mig_activity_peak = peak_activity + answers.get("mig_activity_peak", [])
                if processes is not None:
                    data.processes = processes.result()
                if meta is not None:
                    data.model_of, data.profile_of = meta.result()
            finally:  # on the first failure, do not wait for the other queries' retries
                pool.shutdown(wait=True, cancel_futures=True)
        return data

    def _processes(self, end: datetime, start: datetime, steps: Steps) -> dict[tuple[str, ...], int]:
        """Most processes per workload and device in the chunk, read every ``PROCESS_STEPS``-th step."""
        every = timedelta(milliseconds=steps.step_ms * min(PROCESS_STEPS, steps.count))
        span = end - start - timedelta(milliseconds=1)
        expr = promql.over_time("max", promql.device_processes(self._sampler.peak()), span, every)
        return {device_key(s.labels): int(s.value) for s in self.client.query(expr, end)}

    def _meta(self, start: datetime, end: datetime) -> tuple[dict[str, str], dict[tuple[str, ...], str]]:
        """GPU model per GPU and MIG profile per MIG device, from the series API (no samples read)."""
        model_of: dict[str, str] = {}
        profile_of: dict[tuple[str, ...], str] = {}
        for labels in self.client.series(["slicewise_gpu_info", "slicewise_mig_info"], start, end):
            if labels.get("__name__") == "slicewise_gpu_info" and labels.get("model"):
                model_of[labels.get("gpu_uuid", "")] = labels["model"]
            elif labels.get("profile"):
                profile_of[(labels.get("gpu_uuid", ""), labels.get("gi", ""), labels.get("ci", ""))] = labels["profile"]
        return model_of, profile_of

    def _metric_names(self, window: Window) -> set[str] | None:
        try:
            return self.client.metric_names(window.start, window.end)
        except JobFailed as exc:  # a proxy without the label values API: ask for everything
            if isinstance(exc, Slow):
                raise
            log.info("cannot list metric names (%s); querying every source", exc)
            return None

    def sources(self, window: Window) -> promql.Sources:
        """Which exporters' series the window has, so that the queries leave out what cannot match."""
        names = self._metric_names(window)
        return promql.Sources.present(names) if names is not None else promql.ALL_SOURCES

    def check_recorded(self, window: Window, names: set[str] | None) -> None:
        """Fail when the recording rules' series are missing; warn when they start after the window does."""
        wanted = (promql.RECORDED_MEMORY, promql.RECORDED_COMPUTE)
        if names is not None and not set(wanted) <= names:
            missing = ", ".join(n for n in wanted if n not in names)
            raise JobFailed(
                f"Prometheus at {self.url} has no {missing} series in the window: load"
                " deploy/prometheus/slicewise.rules.yml (docs/prometheus.md; `promtool tsdb create-blocks-from"
                " rules` fills past windows), or leave out --prometheus.recording-rules"
            )
        early = min(window.start + timedelta(hours=1), window.end)
        hour = promql.duration(early - window.start)
        recorded = self.client.query(f"count(last_over_time({promql.RECORDED_MEMORY}[{hour}]))", early)
        raw = self.client.query(f"count(last_over_time(slicewise_process_memory_used_bytes[{hour}]))", early)
        if raw and not recorded:
            log.warning(
                "Prometheus at %s: the recording rules' series start after the window's start (%s); the advice"
                " misses the earlier data. Backfill them with `promtool tsdb create-blocks-from rules`"
                " (docs/prometheus.md) or drop --prometheus.recording-rules",
                self.url,
                window.start.isoformat(),
            )

    def chunk_for(self, window: Window, step: timedelta, src: promql.Sources = promql.ALL_SOURCES) -> timedelta:
        """The longest chunk (whole hours, at most the window and ``MAX_STEPS`` steps) whose queries each hold at
        most ``max_samples`` samples, for the raw series there are over the whole window (series API).

        A range query holds its selected series and its result at once: twice the series per step (measured with
        Prometheus's ``stats=all`` peakSamples), plus dcgm-exporter's MIG fraction table where that is queried.
        """
        per_step = 2 * self._series_over(window, src)
        if src.dcgm_memory:
            per_step += len(promql.dcgm.mig_fractions())
        steps = min(max(self.max_samples // max(per_step, 1), 1), MAX_STEPS - 1)
        hours = max(int(steps * step.total_seconds() // 3600), 1)
        return min(timedelta(hours=hours), window.end - window.start)

    def _series_over(self, window: Window, src: promql.Sources) -> int:
        """Series the biggest query selects at once: raw process series (or the recorded ones), and dcgm's."""
        matchers = [promql.RECORDED_MEMORY if self.recorded else "slicewise_process_memory_used_bytes"]
        if src.dcgm_memory:
            matchers.append(promql.dcgm.MEMORY)
        try:
            return len(self.client.series(matchers, window.start, window.end))
        except JobFailed as exc:
            if isinstance(exc, Slow):
                raise
            log.warning("cannot count series with the series API (%s); sizing chunks from the series now", exc)
            answer = self.client.query(f"count({matchers[0]})", window.end)
            return 2 * max(int(answer[0].value) if answer else 1, 1)  # twice: series come and go over a window


def _steps_in(window: Window, step: timedelta) -> float:
    """Sampling steps in (start, end]: step multiples since the epoch, as subqueries place them."""
    ms = step.total_seconds() * 1000
    return float(math.floor(window.end.timestamp() * 1000 / ms) - math.floor(window.start.timestamp() * 1000 / ms))
