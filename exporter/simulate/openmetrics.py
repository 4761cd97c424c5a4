"""A history as the series the exporter (and dcgm-exporter) would have published, in OpenMetrics text for
``promtool tsdb create-blocks-from openmetrics``: a simulated fleet (or any history file) in a real Prometheus.

The inverse of the history's rules (DESIGN.md), vectorised (pandas, no Python loop per row):

- each row becomes ``process_count`` process series: ``slicewise_process_memory_used_bytes`` split evenly (the
  remainder on the first) and, on whole GPUs, ``slicewise_process_sm_active_ratio`` split evenly;
- on MIG each workload replica (its rows at one time on one GPU and profile) gets its own MIG device (the history
  has no GPU-instance id; one workload per device makes the file's per-workload compute and Prometheus's even split
  the same number), with ``slicewise_mig_info``, ``slicewise_mig_sm_count`` and, on Hopper (GPM),
  ``slicewise_mig_sm_active_ratio`` = the row's GPU fraction × GPU SMs ÷ device SMs; with ``dcgm=True``, MIG
  devices without GPM (A100, A30) get dcgm-exporter's ``DCGM_FI_PROF_SM_ACTIVE`` per GPU instance instead;
- ``slicewise_gpu_info`` (``mps="active"`` at the samples where a row on that GPU is ``mps``) and
  ``slicewise_gpu_sm_count`` per GPU per sample.

Every slicewise series carries the target labels ``job``, ``instance`` and ``node`` Prometheus would add. Each
family's lines are sorted by series, then time, as promtool wants. Backfilled blocks have no staleness markers:
serve them with ``--query.lookback-delta`` just under the step (docs/prometheus.md) so a gap stays a gap.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from exporter.simulate.history import HistorySummary
from slicewise.atomic import atomic_path
from slicewise.catalogue import GpuModel, models
from slicewise.history_schema import truth_path

JOB = "slicewise-exporter"
RECORDED_MEMORY = "workload_device:slicewise_memory_used_bytes:sum"  # deploy/prometheus/slicewise.rules.yml
RECORDED_COMPUTE = "workload_device:slicewise_sm_active:gpu_fraction"
DRIVER = "550.54.15"


@dataclass(frozen=True)
class OpenMetricsSummary:
    path: Path
    samples: int  # lines written, one sample each
    series: int


def _model(name: str) -> GpuModel:
    for model in models():
        if name in model.nvml_names:
            return model
    raise ValueError(f"GPU model {name!r} is not in the catalogue")


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _text(names: tuple[str, ...], values: tuple[object, ...]) -> str:
    """``{a="x",b="y"}``, leaving out empty values (as the exporter does)."""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True) if v != "") + "}"


def _numbers(values: np.ndarray) -> list[str]:
    if np.all(np.mod(values, 1) == 0):
        return [str(v) for v in values.astype(np.int64).tolist()]
    return [repr(v) if not v.is_integer() else str(int(v)) for v in values.tolist()]


def _codes(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    codes, uniques = pd.factorize(column.astype(str), sort=False)
    return codes.astype(np.int64), [str(u) for u in uniques]


@dataclass
class _Rows:
    """The history as integer codes and numbers, in time order; names and label texts in small tables."""

    t: np.ndarray  # epoch ms
    gpu: np.ndarray  # index into uuids
    mps: np.ndarray  # bool: an MPS client row
    memory: np.ndarray
    fraction: np.ndarray
    processes: np.ndarray
    device: np.ndarray  # index into the MIG devices table, -1 off MIG
    pair: np.ndarray  # (workload, GPU) in order of first appearance: pids stay the same for a pair
    workload: np.ndarray
    namespace: np.ndarray
    uuids: list[str]
    workloads: list[str]
    namespaces: list[str]
    gpu_labels: list[dict[str, str]]  # per GPU: target labels, gpu, gpu_uuid
    gpu_info: list[dict[str, str]]  # per GPU: the info labels but mps
    gpu_sms: np.ndarray
    gpm: np.ndarray  # per GPU: has GPM
    devices: pd.DataFrame  # gpu, gi, profile, sms, size

    @staticmethod
    def of(history: pd.DataFrame) -> _Rows:
        f = history.reset_index(drop=True)
        gpu, uuids = _codes(f["gpu_uuid"])
        workload, workloads = _codes(f["workload"])
        namespace, namespaces = _codes(f["namespace"] if "namespace" in f else pd.Series("", index=f.index))
        profile, profiles = _codes(f["mig_profile"])
        node_of = dict(zip(gpu.tolist(), f["node"].astype(str), strict=False))
        model_of = dict(zip(gpu.tolist(), f["gpu_model"].astype(str), strict=False))
        models_of = {i: _model(model_of[i]) for i in range(len(uuids))}
        by_node = sorted(range(len(uuids)), key=lambda i: (node_of[i], uuids[i]))
        index_on_node: dict[int, str] = {}
        for i in by_node:
            index_on_node[i] = str(sum(1 for j in index_on_node if node_of[j] == node_of[i]))
        mig_gpus = set(gpu[(f["mig_profile"].astype(str) != "").to_numpy()].tolist())
        gpu_labels = [
            {
                "job": JOB,
                "instance": f"{node_of[i]}:10052",
                "node": node_of[i],
                "gpu": index_on_node[i],
                "gpu_uuid": uuids[i],
            }
            for i in range(len(uuids))
        ]
        gpu_info = [
            {
                "model": model_of[i],
                "driver_version": DRIVER,
                "mig_mode": "enabled" if i in mig_gpus else "disabled",
                "compute_mode": "Default",
            }
            for i in range(len(uuids))
        ]
        t = f["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
        # two rows of one workload on one GPU with one profile at one time are two MIG devices (replicas)
        keys = pd.DataFrame({"t": t, "gpu": gpu, "profile": profile, "workload": workload})
        replica = keys.groupby(["t", "gpu", "profile", "workload"], sort=False).cumcount().to_numpy()
        is_mig = np.array([p != "" for p in profiles])[profile]
        combined = pd.MultiIndex.from_arrays([gpu, profile, workload, replica])
        device, firsts = pd.factorize(combined[is_mig], sort=False)
        table = pd.DataFrame(list(firsts), columns=["gpu", "profile", "workload", "replica"])
        table["gi"] = table.groupby("gpu", sort=False).cumcount().astype(str)
        table["profile"] = [profiles[p] for p in table["profile"]]
        specs = [models_of[g].profile(p) for g, p in zip(table["gpu"], table["profile"], strict=True)]
        table["sms"] = [spec.sm_count for spec in specs]
        table["size"] = [spec.size for spec in specs]
        devices = np.full(len(f), -1, np.int64)
        devices[is_mig] = device
        pair, _ = pd.factorize(pd.MultiIndex.from_arrays([workload, gpu]), sort=False)
        order = np.argsort(t, kind="stable")
        processes = f["process_count"].to_numpy(np.int64) if "process_count" in f else np.ones(len(f), np.int64)
        return _Rows(
            t=t[order],
            gpu=gpu[order],
            mps=(f["sharing"].astype(str) == "mps").to_numpy()[order],
            memory=f["memory_used_bytes"].to_numpy(np.int64)[order],
            fraction=f["sm_active_gpu_fraction"].to_numpy(float)[order],
            processes=processes[order],
            device=devices[order],
            pair=pair.astype(np.int64)[order],
            workload=workload[order],
            namespace=namespace[order],
            uuids=uuids,
            workloads=workloads,
            namespaces=namespaces,
            gpu_labels=gpu_labels,
            gpu_info=gpu_info,
            gpu_sms=np.array([models_of[i].sm_count for i in range(len(uuids))], float),
            gpm=np.array([models_of[i].has_gpm for i in range(len(uuids))], bool),
            devices=table,
        )

    def slices(self, rows: int) -> list[slice]:
        """Row ranges of about ``rows`` rows, cut between two times (GPU-level series need a time's rows together)."""
        cuts = [0]
        while cuts[-1] < len(self.t):
            at = min(cuts[-1] + rows, len(self.t))
            if at < len(self.t):
                at = int(np.searchsorted(self.t, self.t[at], side="left"))
                if at <= cuts[-1]:
                    at = int(np.searchsorted(self.t, self.t[cuts[-1]], side="right"))
            cuts.append(at)
        return [slice(a, b) for a, b in itertools.pairwise(cuts)]


Family = tuple[np.ndarray, np.ndarray, np.ndarray]  # series codes, times, values


class _Series:
    """Label texts by series code, made the first time a code is met."""

    def __init__(self, text_of: Callable[[int], str]) -> None:
        self.text_of, self.texts = text_of, {}  # type: ignore[var-annotated]

    def __getitem__(self, code: int) -> str:
        text = self.texts.get(code)
        if text is None:
            text = self.texts[code] = self.text_of(code)
        return str(text)


def _device_labels(rows: _Rows, device: int) -> dict[str, str]:
    d = rows.devices.iloc[device]
    return {**rows.gpu_labels[int(d["gpu"])], "gi": str(d["gi"]), "ci": "0"}


def _families(rows: _Rows, dcgm: bool, recorded: bool) -> dict[str, tuple[_Series, Callable[[slice], Family]]]:
    """Per metric: its series' label texts, and its (series, time, value) for a slice of rows."""
    n_gpus = len(rows.uuids)

    def per_gpu(part: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = rows.t[part] * n_gpus + rows.gpu[part]  # one sample per GPU and time; MPS if any row says so
        frame = pd.DataFrame({"key": key, "mps": rows.mps[part]}).groupby("key", sort=False)["mps"].any()
        keys = frame.index.to_numpy()
        return keys % n_gpus, keys // n_gpus, frame.to_numpy()

    def gpu_info(part: slice) -> Family:
        g, t, mps = per_gpu(part)
        return g * 2 + mps, t, np.ones(len(g))

    def gpu_sm_count(part: slice) -> Family:
        g, t, _ = per_gpu(part)
        return g, t, rows.gpu_sms[g]

    def gpu_text(code: int) -> str:
        return _text(tuple(rows.gpu_labels[code]), tuple(rows.gpu_labels[code].values()))

    def info_text(code: int) -> str:
        labels = {**rows.gpu_labels[code // 2], **rows.gpu_info[code // 2]}
        labels["mps"] = "active" if code % 2 else "inactive"
        labels["exported_node"] = labels["node"]
        return _text(tuple(labels), tuple(labels.values()))

    on_mig = rows.device >= 0
    ratio_all = np.full(len(rows.t), np.nan)
    dev = rows.device[on_mig]
    ratio_all[on_mig] = rows.fraction[on_mig] * rows.gpu_sms[rows.gpu[on_mig]] / rows.devices["sms"].to_numpy()[dev]

    def mig(part: slice, keep: Callable[[np.ndarray], np.ndarray] | None = None, value: str = "one") -> Family:
        where = on_mig[part]
        d, t = rows.device[part][where], rows.t[part][where]
        values = {"one": np.ones(len(d)), "sms": rows.devices["sms"].to_numpy(float)[d]}.get(value)
        if values is None:
            values = ratio_all[part][where]
        if keep is not None:
            chosen = keep(rows.gpu[part][where]) & ~np.isnan(values)
            d, t, values = d[chosen], t[chosen], values[chosen]
        return d, t, values

    def mig_info_text(code: int) -> str:
        d = rows.devices.iloc[code]
        labels = {**_device_labels(rows, code)}
        labels["mig_uuid"] = f"MIG-{labels['gpu_uuid'][4:]}-{d['gi']}"
        labels |= {"profile": str(d["profile"]), "placement_start": "0", "placement_size": str(d["size"])}
        return _text(tuple(labels), tuple(labels.values()))

    def mig_text(code: int) -> str:
        labels = {**_device_labels(rows, code), "profile": str(rows.devices.iloc[code]["profile"])}
        return _text(tuple(labels), tuple(labels.values()))

    def dcgm_text(code: int) -> str:
        d = rows.devices.iloc[code]
        g = rows.gpu_labels[int(d["gpu"])]
        labels = {
            "gpu": g["gpu"],
            "UUID": g["gpu_uuid"],
            "device": f"nvidia{g['gpu']}",
            "modelName": rows.gpu_info[int(d["gpu"])]["model"],
            "Hostname": g["node"],
            "GPU_I_PROFILE": str(d["profile"]),
            "GPU_I_ID": str(d["gi"]),
            "job": "dcgm-exporter",
            "instance": f"{g['node']}:9400",
        }
        return _text(tuple(labels), tuple(labels.values()))

    # processes: process_count series per row; a series is (workload-GPU pair, k-th process, device, namespace)
    max_k = int(rows.processes.max()) if len(rows.processes) else 1
    n_dev, n_ns = len(rows.devices) + 1, max(len(rows.namespaces), 1)

    def processes(part: slice, compute: bool) -> Family:
        count = rows.processes[part]
        repeat = np.repeat(np.arange(len(count)), count)
        k = np.arange(len(repeat)) - np.repeat(np.cumsum(count) - count, count)
        pair, device = rows.pair[part][repeat], rows.device[part][repeat] + 1
        code = ((pair * max_k + k) * n_dev + device) * n_ns + rows.namespace[part][repeat]
        t, c = rows.t[part][repeat], count[repeat]
        if compute:
            fraction = rows.fraction[part][repeat]
            chosen = (device == 0) & ~np.isnan(fraction)
            return code[chosen], t[chosen], (fraction / c)[chosen]
        memory = rows.memory[part][repeat]
        return code, t, memory // c + np.where(k == 0, memory % c, 0)

    workload_of = dict(zip(rows.pair.tolist(), rows.workload.tolist(), strict=False))
    gpu_of_pair = dict(zip(rows.pair.tolist(), rows.gpu.tolist(), strict=False))

    def process_text(code: int) -> str:
        code, namespace = divmod(code, n_ns)
        code, device = divmod(code, n_dev)
        pair, k = divmod(code, max_k)
        labels = dict(rows.gpu_labels[gpu_of_pair[pair]])
        if device:
            labels |= {"gi": str(rows.devices.iloc[device - 1]["gi"]), "ci": "0"}
        workload = rows.workloads[workload_of[pair]]
        labels |= {
            "pid": str(1000 + 16 * pair + k),
            "process": "python3",
            "workload": workload,
            "namespace": rows.namespaces[namespace] if rows.namespaces else "",
            "pod": f"{workload.rsplit('/', 1)[-1]}-{k}",
            "container": "main",
        }
        return _text(tuple(labels), tuple(labels.values()))

    def recorded_family(part: slice, compute: bool) -> Family:
        code = ((rows.pair[part] * n_dev + rows.device[part] + 1) * n_ns) + rows.namespace[part]
        if not compute:
            return code, rows.t[part], rows.memory[part].astype(float)
        fraction = rows.fraction[part]
        # the rules record MIG compute from GPM (or dcgm-exporter's activity), none where nothing measured it
        measured = ~np.isnan(fraction) & ((rows.device[part] < 0) | rows.gpm[rows.gpu[part]] | dcgm)
        return code[measured], rows.t[part][measured], fraction[measured]

    def recorded_text(code: int) -> str:
        code, namespace = divmod(code, n_ns)
        pair, device = divmod(code, n_dev)
        labels = dict(rows.gpu_labels[gpu_of_pair[pair]])
        if device:
            d = rows.devices.iloc[device - 1]
            labels |= {"gi": str(d["gi"]), "ci": "0", "profile": str(d["profile"])}
        labels |= {
            "model": rows.gpu_info[gpu_of_pair[pair]]["model"],
            "workload": rows.workloads[workload_of[pair]],
            "namespace": rows.namespaces[namespace] if rows.namespaces else "",
        }
        return _text(tuple(labels), tuple(labels.values()))

    out: dict[str, tuple[_Series, Callable[[slice], Family]]] = {
        "slicewise_gpu_info": (_Series(info_text), gpu_info),
        "slicewise_gpu_sm_count": (_Series(gpu_text), gpu_sm_count),
        "slicewise_process_memory_used_bytes": (_Series(process_text), lambda p: processes(p, compute=False)),
        "slicewise_process_sm_active_ratio": (_Series(process_text), lambda p: processes(p, compute=True)),
    }
    if len(rows.devices):
        out["slicewise_mig_info"] = (_Series(mig_info_text), mig)
        out["slicewise_mig_sm_count"] = (_Series(mig_text), lambda p: mig(p, value="sms"))
        out["slicewise_mig_sm_active_ratio"] = (
            _Series(mig_text),
            lambda p: mig(p, keep=lambda g: rows.gpm[g], value="ratio"),
        )
        if dcgm:
            out["DCGM_FI_PROF_SM_ACTIVE"] = (
                _Series(dcgm_text),
                lambda p: mig(p, keep=lambda g: ~rows.gpm[g], value="ratio"),
            )
    if recorded:
        texts = _Series(recorded_text)
        out[RECORDED_MEMORY] = (texts, lambda p: recorded_family(p, compute=False))
        out[RECORDED_COMPUTE] = (texts, lambda p: recorded_family(p, compute=True))
    return out


def write_openmetrics(
    history: pd.DataFrame,
    out: Path,
    *,
    dcgm: bool = False,
    recorded: bool = False,
    rows_per_slice: int = 1_000_000,
) -> OpenMetricsSummary:
    """Write the series of ``history`` (``read_history``'s frame) to ``out`` (atomically) in OpenMetrics text.

    One family after another; within a family, slices of about ``rows_per_slice`` history rows in time order,
    each sorted by series then time — so every series' samples are in time order, as promtool needs, and memory
    stays bounded however long the history. With ``recorded=True`` it also writes the two per-workload series of
    deploy/prometheus/slicewise.rules.yml that the advisor reads (``workload_device:…``), as the rules would have
    recorded them at each scrape: what ``promtool tsdb create-blocks-from rules`` makes from the raw series, without
    re-evaluating every rule over the whole history (which took 8 minutes for 32 GPUs x 14 days on a 2-core VM).
    """
    rows = _Rows.of(history)
    families = _families(rows, dcgm, recorded)
    samples, seen = 0, 0
    with atomic_path(out) as tmp, tmp.open("w") as text:
        for metric in sorted(families):
            texts, build = families[metric]
            text.write(f"# TYPE {metric} gauge\n")
            for part in rows.slices(rows_per_slice):
                codes, t, v = build(part)
                order = np.lexsort((t, codes))
                codes, t, v = codes[order], t[order], v[order]
                first = np.ones(len(t), bool)
                first[1:] = (codes[1:] != codes[:-1]) | (t[1:] != t[:-1])
                codes, t, v = codes[first], t[first], v[first]
                samples += len(t)
                _write_lines(text, metric, [texts[c] for c in codes.tolist()], t, v)
            seen += len(texts.texts)
        text.write("# EOF\n")
    return OpenMetricsSummary(out, samples, seen)


def _write_lines(text: TextIO, metric: str, labels: list[str], t: np.ndarray, v: np.ndarray) -> None:
    seconds = [str(x // 1000) if x % 1000 == 0 else repr(x / 1000) for x in t.tolist()]
    text.writelines(f"{metric}{s} {n} {ts}\n" for s, n, ts in zip(labels, _numbers(v), seconds, strict=True))


def simulate_openmetrics(
    out: Path, *, scenario: str, days: float, gpus: int | None, seed: int, dcgm: bool = False
) -> tuple[HistorySummary, OpenMetricsSummary]:
    """``slicewise simulate --out FILE.om``: the simulated history (as ``write_history`` writes it, truth file
    beside ``out``) turned into the exporter's series."""
    from exporter.simulate.history import write_history  # the simulator's numpy tables: only when simulating

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".slicewise-om-", dir=out.parent) as tmp:
        parquet = Path(tmp) / "history.parquet"
        history = write_history(parquet, scenario=scenario, days=days, gpus=gpus, seed=seed)
        frame = pd.read_parquet(parquet)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        written = write_openmetrics(frame, out, dcgm=dcgm)
        truth = truth_path(out)
        shutil.move(str(history.truth), truth)
    return replace(history, path=out, truth=truth), written
