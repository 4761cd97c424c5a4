"""Write a fleet's usage history (DESIGN.md "History file") and its truth file, vectorised, deterministic.

The history is what the exporter would have recorded: the same archetype models and contention as the live fake
NVML (``activity.MemberTable``), sampled every ``step_s`` seconds over ``days`` ending at ``end``. One row per
sample of one workload on one device (replicas of a workload on one device are one row, ``process_count`` of
them). Columns as ``slicewise.history_schema``; ``sharing`` derived as DESIGN.md says: ``mig`` on a MIG device,
``mps`` for MPS clients, ``timeslice`` when more than one workload ran on the same non-MIG GPU in that sample,
else ``exclusive``. ``sm_active_gpu_fraction`` = device SM-active ratio x device SMs / GPU SMs for the
workload's share, and empty (not measured) on A100/A30 MIG devices, whose per-instance activity NVML cannot measure.

Rows are produced in time chunks with numpy and streamed to Parquet row groups or CSV batches, so 64 GPUs x 14
days at 60 s takes seconds. Both files are written atomically (``slicewise.atomic``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exporter.simulate.activity import MemberTable
from exporter.simulate.clock import ANCHOR, ManualClock
from exporter.simulate.fleet import Fleet
from exporter.simulate.identity import IdentityKind
from exporter.simulate.runtime import MIB
from exporter.simulate.scenarios import build_scenario
from slicewise.atomic import atomic_path, write_text
from slicewise.errors import BadInput
from slicewise.history_schema import TRUTH_COLUMNS, Sharing, file_format, truth_path
from slicewise.progress import progress

DAY = 86400
CELLS_PER_CHUNK = 3_000_000  # members x samples evaluated at once: bounds memory (~25 bytes per cell per array)
SHARING_ORDER = (Sharing.EXCLUSIVE, Sharing.MIG, Sharing.MPS, Sharing.TIMESLICE)


@dataclass(frozen=True)
class HistorySummary:
    path: Path
    truth: Path
    rows: int
    workloads: int
    gpus: int
    start: float  # epoch seconds of the first sample
    end: float  # epoch seconds just after the last sample
    step_s: int


@dataclass(frozen=True)
class _Groups:
    """Rows keys: one per (workload, device), with the per-group text columns as dictionary codes."""

    member_order: np.ndarray  # members sorted by group
    starts: np.ndarray  # where each group begins in member_order
    device: np.ndarray  # (G,) device index of each group
    device_order: np.ndarray  # groups sorted by device
    device_starts: np.ndarray
    devices_used: np.ndarray
    codes: dict[str, np.ndarray]  # column -> (G,) code into dictionaries[column]
    dictionaries: dict[str, list[str]]
    base_sharing: np.ndarray  # (G,) 1 = mig, 2 = mps, 0 = exclusive-or-timeslice (decided per sample)
    measurable: np.ndarray  # (G,) bool: the exporter can measure SM activity there


def _groups(fleet: Fleet, devices: list[Any], device_of: np.ndarray) -> _Groups:
    members = fleet.members
    keys: dict[tuple[str, int], int] = {}
    group_of = np.empty(len(members), dtype=np.int64)
    for i, m in enumerate(members):
        group_of[i] = keys.setdefault((m.workload.key, int(device_of[i])), len(keys))
    member_order = np.argsort(group_of, kind="stable")
    starts = np.searchsorted(group_of[member_order], np.arange(len(keys)))
    first_member = member_order[starts]
    columns = ("workload", "node", "gpu_uuid", "gpu_model", "mig_profile", "namespace")
    dictionaries: dict[str, list[str]] = {c: [] for c in columns}
    lookup: dict[str, dict[str, int]] = {c: {} for c in columns}
    codes = {c: np.empty(len(keys), dtype=np.int32) for c in columns}
    device = np.empty(len(keys), dtype=np.int64)
    base = np.zeros(len(keys), dtype=np.int8)
    measurable = np.ones(len(keys), dtype=bool)
    for g, member in enumerate(first_member):
        m = members[int(member)]
        d = devices[int(device_of[member])]
        device[g] = int(device_of[member])
        values = {
            "workload": m.workload.name,
            "node": d.gpu.node,
            "gpu_uuid": d.gpu.uuid,
            "gpu_model": d.gpu.model.name,
            "mig_profile": d.profile_name,
            "namespace": m.workload.namespace,
        }
        for c, v in values.items():
            code = lookup[c].get(v)
            if code is None:
                code = lookup[c][v] = len(dictionaries[c])
                dictionaries[c].append(v)
            codes[c][g] = code
        base[g] = 1 if d.is_mig else (2 if d.mps else 0)
        measurable[g] = not (d.is_mig and not d.gpu.model.has_gpm)
    device_order = np.argsort(device, kind="stable")
    devices_used, device_starts = np.unique(device[device_order], return_index=True)
    return _Groups(
        member_order, starts, device, device_order, device_starts, devices_used, codes, dictionaries, base, measurable
    )


def _sum_groups(values: np.ndarray, groups: _Groups) -> np.ndarray:
    return np.add.reduceat(values[groups.member_order], groups.starts, axis=0)


def _arrow_chunk(times: np.ndarray, ev: Any, groups: _Groups, devices: int, csv_out: bool) -> Any:
    import pyarrow as pa

    count = _sum_groups(ev.present.astype(np.int64), groups)  # (G, T) processes of the workload on the device
    memory = _sum_groups(np.round(ev.memory / MIB) * MIB, groups)
    sm = _sum_groups(ev.realised, groups)
    running = count > 0
    # distinct workloads per device and sample: more than one on a non-MIG, non-MPS GPU is time-slicing
    per_device = np.zeros((devices, running.shape[1]), dtype=np.int64)
    per_device[groups.devices_used] = np.add.reduceat(
        running[groups.device_order].astype(np.int64), groups.device_starts, axis=0
    )
    t_index, g_index = np.nonzero(running.T)  # rows ordered by time, then group
    sharing = groups.base_sharing[g_index].astype(np.int8)
    shared = (sharing == 0) & (per_device[groups.device[g_index], t_index] > 1)
    sharing[shared] = 3
    fraction = np.round(np.clip(sm[g_index, t_index], 0.0, 1.0), 4)
    unmeasured = ~groups.measurable[g_index]

    def text(column: str) -> Any:
        dictionary = pa.array(groups.dictionaries[column], type=pa.string())
        return pa.DictionaryArray.from_arrays(pa.array(groups.codes[column][g_index]), dictionary).cast(pa.string())

    stamps = times[t_index].astype(np.int64)
    timestamp = pa.array(stamps, pa.int64()) if csv_out else pa.array(stamps * 1000, pa.timestamp("ms", tz="UTC"))
    sharing_names = pa.array([s.value for s in SHARING_ORDER], type=pa.string())
    return pa.table(
        {
            "timestamp": timestamp,
            "workload": text("workload"),
            "node": text("node"),
            "gpu_uuid": text("gpu_uuid"),
            "gpu_model": text("gpu_model"),
            "mig_profile": text("mig_profile"),
            "sharing": pa.DictionaryArray.from_arrays(pa.array(sharing), sharing_names).cast(pa.string()),
            "memory_used_bytes": pa.array(memory[g_index, t_index].astype(np.int64), pa.int64()),
            "sm_active_gpu_fraction": pa.array(fraction, pa.float64(), mask=unmeasured),
            "namespace": text("namespace"),
            "process_count": pa.array(count[g_index, t_index], pa.int64()),
        }
    )


def _truth_text(fleet: Fleet) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*TRUTH_COLUMNS, "source", "namespace", "gpu_model", "nodes", "processes"])
    rows: dict[str, list[Any]] = {}
    for m in fleet.members:
        w = m.workload
        node = m.device_key.split("/")[0]
        model = next(g.model.name for n in fleet.nodes if n.name == node for g in n.gpus)
        row = rows.setdefault(w.name, [w.name, w.archetype.value, _source(w.identity.kind), w.namespace, model, [], 0])
        if node not in row[5]:
            row[5].append(node)
        row[6] += 1
    for name in sorted(rows):
        r = rows[name]
        writer.writerow([*r[:5], " ".join(r[5]), r[6]])
    return buffer.getvalue()


def _source(kind: IdentityKind) -> str:
    """Which attribution step names the workload (exporter.attribution.precedence.Step values)."""
    if kind.kubernetes:
        return "kubernetes"
    return {IdentityKind.CONTAINER: "container", IdentityKind.SLURM: "slurm", IdentityKind.SYSTEMD: "systemd"}.get(
        kind, "user"
    )


def write_history(
    path: Path,
    *,
    scenario: str = "mixed",
    days: float = 14.0,
    gpus: int | None = None,
    seed: int = 0,
    step_s: int = 60,
    end: float = ANCHOR,
    fleet: Fleet | None = None,
) -> HistorySummary:
    """Write ``path`` (.parquet or .csv) and ``path.truth.csv`` for ``fleet`` (default: ``build_scenario(scenario,
    seed=seed, gpus=gpus)``), sampled every ``step_s`` seconds for ``days`` days ending at ``end`` (epoch seconds,
    default a fixed Monday so output depends on the seed alone). Byte-for-byte the same for the same arguments."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    fmt = file_format(path)
    if days <= 0 or step_s < 1:
        raise BadInput(f"a history needs days > 0 and a step of at least 1 s (got days={days}, step={step_s})")
    samples = int(days * DAY // step_s)
    if samples < 1:
        raise BadInput(f"{days} days at {step_s} s is less than one sample")
    if fleet is None:
        fleet = build_scenario(scenario, seed=seed, gpus=gpus, clock=ManualClock(end))
    end_s = int(end)
    start = end_s - samples * step_s
    devices = [d for n in fleet.nodes for d in n.devices()]
    index = {d.key: i for i, d in enumerate(devices)}
    device_of = np.array([index[m.device_key] for m in fleet.members], dtype=np.int64)
    table = MemberTable([m.behaviour for m in fleet.members], device_of, [d.capacity for d in devices])
    groups = _groups(fleet, devices, device_of)
    chunk = max(1, CELLS_PER_CHUNK // max(1, len(fleet.members)))
    rows = 0
    csv_out = fmt == "csv"
    with atomic_path(path) as tmp, progress(f"Simulating {path.name}", total=samples) as bar:
        writer: Any = None
        try:
            for first in range(0, samples, chunk):
                times = start + step_s * np.arange(first, min(samples, first + chunk), dtype=np.int64)
                part = _arrow_chunk(times, table.evaluate(times), groups, len(devices), csv_out)
                if writer is None:
                    if csv_out:
                        options = pacsv.WriteOptions(quoting_style="none")
                        writer = pacsv.CSVWriter(str(tmp), part.schema, write_options=options)
                    else:
                        writer = pq.ParquetWriter(str(tmp), part.schema, compression="zstd")
                writer.write_table(part)
                rows += part.num_rows
                bar.advance(len(times))
        finally:
            if writer is not None:
                writer.close()
        write_text(truth_path(path), _truth_text(fleet))
    return HistorySummary(path, truth_path(path), rows, len(fleet.workloads()), len(fleet.gpus), start, end_s, step_s)
