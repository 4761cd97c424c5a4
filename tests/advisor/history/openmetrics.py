"""A history file turned back into the series the exporter (and dcgm-exporter) would have given Prometheus.

Tests load the output with ``promtool tsdb create-blocks-from openmetrics`` into a real Prometheus and check that
the advisor's Prometheus source finds the features the history file gives. Inverse of the history's rules:

- each row becomes ``process_count`` process series (``slicewise_process_memory_used_bytes`` split evenly, the
  remainder on the first; ``slicewise_process_sm_active_ratio`` on whole GPUs, split evenly);
- on MIG each workload (each replica: its rows at one time on one GPU and profile) gets its own MIG device (the
  history has no GPU-instance id; one workload per device is what makes the file's per-workload compute and
  Prometheus's even split the same number). Its
  ``slicewise_mig_sm_active_ratio`` = the row's GPU fraction × GPU SMs ÷ device SMs, on Hopper only (GPM);
  with ``dcgm=True``, A100/A30 MIG devices get ``DCGM_FI_PROF_SM_ACTIVE`` per GPU instance instead;
- ``slicewise_gpu_info`` says ``mps="active"`` at the samples where a row on that GPU is ``mps``.
Every slicewise series carries the target labels ``job``, ``instance`` and ``node`` Prometheus would add.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from slicewise.catalogue import GpuModel, models

JOB = "slicewise-exporter"


def _model(name: str) -> GpuModel:
    for model in models():
        if name in model.nvml_names:
            return model
    raise ValueError(f"GPU model {name!r} is not in the catalogue")


def _labels(**labels: object) -> str:
    def escaped(value: object) -> str:
        return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escaped(v)}"' for k, v in labels.items() if v != "") + "}"


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Families:
    """Samples grouped by metric family, then series, each series in time order (what promtool wants)."""

    def __init__(self) -> None:
        self.series: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))

    def add(self, metric: str, labels: str, t: float, value: float) -> None:
        self.series[metric][labels].append((t, value))

    def lines(self) -> Iterator[str]:
        for metric in sorted(self.series):
            yield f"# TYPE {metric} gauge\n"
            for labels, points in self.series[metric].items():
                seen: set[float] = set()
                for t, value in sorted(points):
                    if t not in seen:  # GPU-level series are added once per row: keep one sample per time
                        seen.add(t)
                        yield f"{metric}{labels} {_number(value)} {_number(t)}\n"


def write_openmetrics(history: pd.DataFrame, out: Path, *, dcgm: bool = False) -> Path:
    """Write the series of ``history`` (read_history's frame) to ``out`` in OpenMetrics text."""
    families = _Families()
    frame = history.copy()
    frame["t"] = frame["timestamp"].dt.as_unit("ms").astype("int64") / 1000.0
    # two rows of one workload on one GPU with one profile at one time are two MIG devices (replicas)
    frame["replica"] = frame.groupby(["t", "gpu_uuid", "mig_profile", "workload"], observed=True).cumcount()
    namespaces = frame["namespace"].astype(str) if "namespace" in frame else pd.Series("", index=frame.index)
    processes = frame["process_count"].to_numpy() if "process_count" in frame else np.ones(len(frame), dtype=int)
    # where each GPU lives and its index on its node; one MIG device per (GPU, profile, workload)
    gpus = frame.drop_duplicates("gpu_uuid")[["gpu_uuid", "node", "gpu_model"]]
    index_on_node = {
        u: str(i) for _, g in gpus.groupby("node", observed=True) for i, u in enumerate(sorted(g["gpu_uuid"]))
    }
    node_of = dict(zip(gpus["gpu_uuid"], gpus["node"], strict=True))
    model_of = dict(zip(gpus["gpu_uuid"], gpus["gpu_model"], strict=True))
    gi_of: dict[tuple[str, str, str, int], str] = {}
    pids: dict[tuple[str, str], int] = {}
    mig_gpus = set(frame.loc[frame["mig_profile"] != "", "gpu_uuid"])
    mps_at = set(
        zip(frame.loc[frame["sharing"] == "mps", "gpu_uuid"], frame.loc[frame["sharing"] == "mps", "t"], strict=True)
    )

    def target(uuid: str) -> dict[str, str]:
        return {"job": JOB, "instance": f"{node_of[uuid]}:10052", "node": node_of[uuid]}

    for row, count, namespace in zip(frame.itertuples(index=False), processes, namespaces, strict=True):
        uuid, t, workload = str(row.gpu_uuid), float(row.t), str(row.workload)
        model = _model(model_of[uuid])
        gpu = {**target(uuid), "gpu": index_on_node[uuid], "gpu_uuid": uuid}
        mps = "active" if (uuid, t) in mps_at else "inactive"
        info = _labels(
            **gpu,
            model=model_of[uuid],
            driver_version="550.54.15",
            mig_mode="enabled" if uuid in mig_gpus else "disabled",
            compute_mode="Default",
            mps=mps,
            exported_node=node_of[uuid],
        )
        families.add("slicewise_gpu_info", info, t, 1)
        families.add("slicewise_gpu_sm_count", _labels(**gpu), t, model.sm_count)
        profile_name = str(row.mig_profile)
        gi = ci = ""
        fraction = float(row.sm_active_gpu_fraction)
        if profile_name:
            profile = model.profile(profile_name)
            device_key = (uuid, profile_name, workload, int(row.replica))
            gi = gi_of.setdefault(device_key, str(sum(1 for k in gi_of if k[0] == uuid)))
            ci = "0"
            device = {**gpu, "gi": gi, "ci": ci}
            families.add(
                "slicewise_mig_info",
                _labels(
                    **device,
                    mig_uuid=f"MIG-{uuid[4:]}-{gi}",
                    profile=profile_name,
                    placement_start=0,
                    placement_size=profile.size,
                ),
                t,
                1,
            )
            families.add("slicewise_mig_sm_count", _labels(**device, profile=profile_name), t, profile.sm_count)
            if not np.isnan(fraction):
                ratio = fraction * model.sm_count / profile.sm_count
                if model.has_gpm:
                    families.add("slicewise_mig_sm_active_ratio", _labels(**device, profile=profile_name), t, ratio)
                elif dcgm:
                    dcgm_labels = _labels(
                        gpu=index_on_node[uuid],
                        UUID=uuid,
                        device=f"nvidia{index_on_node[uuid]}",
                        modelName=model_of[uuid],
                        Hostname=node_of[uuid],
                        GPU_I_PROFILE=profile_name,
                        GPU_I_ID=gi,
                        job="dcgm-exporter",
                        instance=f"{node_of[uuid]}:9400",
                    )
                    families.add("DCGM_FI_PROF_SM_ACTIVE", dcgm_labels, t, ratio)
        memory = int(row.memory_used_bytes)
        owner = workload.rsplit("/", 1)[-1]
        for k in range(int(count)):
            share = memory // count + (memory % count if k == 0 else 0)
            pid = 1000 + 16 * pids.setdefault((workload, uuid), len(pids)) + k
            process = _labels(
                **gpu,
                gi=gi,
                ci=ci,
                pid=pid,
                process="python3",
                workload=workload,
                namespace=namespace,
                pod=f"{owner}-{k}",
                container="main",
            )
            families.add("slicewise_process_memory_used_bytes", process, t, share)
            if not profile_name and not np.isnan(fraction):
                families.add("slicewise_process_sm_active_ratio", process, t, fraction / count)
    with out.open("w") as text:
        text.writelines(families.lines())
        text.write("# EOF\n")
    return out
