"""``scripts/real-gpu-check``: on a node with NVIDIA GPUs, compare the exporter's series with nvidia-smi and time
every NVML call a scrape makes; write a short report (Markdown and JSON). Exit 0 when everything agrees, 1 when
something differs, 2 on bad usage.

nvidia-smi is the reference because it is NVIDIA's own NVML client:
- ``--query-gpu=index,uuid,name,driver_version,memory.total,memory.used,mig.mode.current`` (memory per GPU),
- ``--query-compute-apps=gpu_uuid,pid,process_name,used_memory`` (the process list, host pids),
- ``mig -lgi`` / ``mig -lci`` (GPU and compute instances: profile, ids, placement),
- ``-q -x`` (memory per MIG device, ``mig_devices/mig_device/fb_memory_usage``).

Values move between two reads, so "used" figures agree within ``USED_TOLERANCE``; totals, ids, profiles, pids and
placements must be equal. ``--recorded DIR`` reads those outputs from files (``query-gpu.csv``,
``compute-apps.csv``, ``mig-lgi.txt``, ``mig-lci.txt``, ``q.xml``) instead of running nvidia-smi: the tests use
it, and so can a person re-checking a node's transcript against a saved scrape (``--scrape FILE``).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

MIB = 2**20
USED_TOLERANCE = (64 * MIB, 0.05)  # bytes, share: whichever is larger
_MISSING = {"", "[N/A]", "N/A", "[Not Supported]", "[Insufficient Permissions]"}


@dataclass(frozen=True)
class SmiGpu:
    index: int
    uuid: str
    name: str
    driver: str
    memory_total_mib: int | None
    memory_used_mib: int | None
    mig: bool


@dataclass(frozen=True)
class SmiApp:
    gpu_uuid: str
    pid: int
    name: str
    used_mib: int | None


@dataclass(frozen=True)
class SmiInstance:
    """A row of ``nvidia-smi mig -lgi`` (``ci`` None) or ``-lci``."""

    gpu: int
    gi: int
    ci: int | None
    profile: str  # without "MIG ", e.g. 3g.40gb or 1c.3g.40gb
    start: int | None
    size: int | None


@dataclass(frozen=True)
class SmiMigMemory:
    gpu_uuid: str
    gi: int
    ci: int
    total_mib: int | None
    used_mib: int | None


@dataclass
class Smi:
    gpus: list[SmiGpu]
    apps: list[SmiApp]
    gpu_instances: list[SmiInstance]
    compute_instances: list[SmiInstance]
    mig_memory: list[SmiMigMemory]


# --- parsing nvidia-smi ------------------------------------------------------------------------------------------


def _int(text: str) -> int | None:
    text = text.strip()
    if text in _MISSING:
        return None
    return int(float(text.split()[0]))


def _csv_rows(text: str, columns: int, what: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("No running"):
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != columns:
            raise ValueError(f"{what}: expected {columns} columns, got {len(cells)} in {line!r}")
        rows.append(cells)
    return rows


def parse_query_gpu(text: str) -> list[SmiGpu]:
    """``--query-gpu=index,uuid,name,driver_version,memory.total,memory.used,mig.mode.current`` with
    ``--format=csv,noheader,nounits``."""
    return [
        SmiGpu(int(i), uuid, name, driver, _int(total), _int(used), mig.lower() == "enabled")
        for i, uuid, name, driver, total, used, mig in _csv_rows(text, 7, "--query-gpu")
    ]


def parse_compute_apps(text: str) -> list[SmiApp]:
    """``--query-compute-apps=gpu_uuid,pid,process_name,used_memory --format=csv,noheader,nounits``."""
    return [SmiApp(uuid, int(pid), name, _int(used)) for uuid, pid, name, used in _csv_rows(text, 4, "compute-apps")]


_LGI = re.compile(r"^\|\s*(\d+)\s+MIG\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+):(\d+)\s*\|$")
_LCI = re.compile(r"^\|\s*(\d+)\s+(\d+)\s+MIG\s+(\S+)\s+(\d+)\s+(\d+)(?:\s+(\d+):(\d+))?\s*\|$")


def parse_lgi(text: str) -> list[SmiInstance]:
    """``nvidia-smi mig -lgi``: ``|   0  MIG 3g.40gb   9   1   0:4   |`` (GPU, name, profile id, GI id, start:size)."""
    found = []
    for line in text.splitlines():
        m = _LGI.match(line.strip())
        if m:
            gpu, name, _profile_id, gi, start, size = m.groups()
            found.append(SmiInstance(int(gpu), int(gi), None, name, int(start), int(size)))
    return found


def parse_lci(text: str) -> list[SmiInstance]:
    """``nvidia-smi mig -lci``: GPU, GI id, name, profile id, CI id and (newer drivers) placement."""
    found = []
    for line in text.splitlines():
        m = _LCI.match(line.strip())
        if m:
            gpu, gi, name, _profile_id, ci, start, size = m.groups()
            found.append(SmiInstance(int(gpu), int(gi), int(ci), name, _int(start or ""), _int(size or "")))
    return found


def parse_mig_memory(xml_text: str) -> list[SmiMigMemory]:
    """``nvidia-smi -q -x``: each GPU's ``mig_devices/mig_device`` with ``fb_memory_usage`` (MiB)."""
    root = ET.fromstring(xml_text)
    found = []
    for gpu in root.iter("gpu"):
        uuid = (gpu.findtext("uuid") or "").strip()
        for dev in gpu.iter("mig_device"):
            found.append(
                SmiMigMemory(
                    uuid,
                    int(dev.findtext("gpu_instance_id") or -1),
                    int(dev.findtext("compute_instance_id") or -1),
                    _int(dev.findtext("fb_memory_usage/total") or ""),
                    _int(dev.findtext("fb_memory_usage/used") or ""),
                )
            )
    return found


SMI_COMMANDS: dict[str, list[str]] = {
    "query-gpu.csv": [
        "--query-gpu=index,uuid,name,driver_version,memory.total,memory.used,mig.mode.current",
        "--format=csv,noheader,nounits",
    ],
    "compute-apps.csv": ["--query-compute-apps=gpu_uuid,pid,process_name,used_memory", "--format=csv,noheader,nounits"],
    "mig-lgi.txt": ["mig", "-lgi"],
    "mig-lci.txt": ["mig", "-lci"],
    "q.xml": ["-q", "-x"],
}


def read_smi(read: Callable[[str], str]) -> Smi:
    """Parse the five outputs; ``read(name)`` gives each (from nvidia-smi or a recorded file; "" when absent)."""
    return Smi(
        parse_query_gpu(read("query-gpu.csv")),
        parse_compute_apps(read("compute-apps.csv")),
        parse_lgi(read("mig-lgi.txt")),
        parse_lci(read("mig-lci.txt")),
        parse_mig_memory(read("q.xml") or "<nvidia_smi_log/>"),
    )


def run_smi(binary: str, out: Path) -> Callable[[str], str]:
    """Run each nvidia-smi command once, keep its output under ``out`` (the transcript goes with the report)."""

    def read(name: str) -> str:
        done = subprocess.run([binary, *SMI_COMMANDS[name]], capture_output=True, text=True, timeout=60, check=False)
        text = done.stdout if done.returncode == 0 else ""  # `mig -lgi` without MIG: "No MIG-enabled devices"
        (out / name).write_text(done.stdout + done.stderr)
        return text

    return read


# --- timing NVML calls -------------------------------------------------------------------------------------------


@dataclass
class CallCost:
    calls: int = 0
    seconds: float = 0.0


@contextmanager
def timed_nvml(costs: dict[str, CallCost]) -> Iterator[None]:
    """Time every ``pynvml.nvml*`` function while inside: the exporter calls them through the module's attributes."""
    import pynvml

    originals: dict[str, Any] = {}
    for name, fn in list(vars(pynvml).items()):
        if not name.startswith("nvml") or not callable(fn) or isinstance(fn, type):
            continue

        def timed(*args: Any, _fn: Any = fn, _name: str = name, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _fn(*args, **kwargs)
            finally:
                cost = costs.setdefault(_name, CallCost())
                cost.calls += 1
                cost.seconds += time.perf_counter() - start

        originals[name] = fn
        setattr(pynvml, name, wraps(fn)(timed))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(pynvml, name, fn)


# --- the exporter's side -----------------------------------------------------------------------------------------


@dataclass
class Series:
    name: str
    labels: dict[str, str]
    value: float


def parse_scrape(text: str) -> list[Series]:
    return [
        Series(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


@dataclass
class Measured:
    scrape: str
    scrape_seconds: list[float]
    costs: dict[str, CallCost]
    diagnostics: dict[str, object]


def measure(scrapes: int, interval_s: float) -> Measured:
    """Build the exporter on the real driver (no HTTP), scrape ``scrapes`` times ``interval_s`` apart, timing each
    scrape and every NVML call; the first read (what the exporter does at start) is not counted."""
    from prometheus_client import generate_latest

    from exporter.app import ExporterOptions, build_exporter

    exporter = build_exporter(ExporterOptions(kubernetes="off", node_name=platform.node()), serve=False)
    costs: dict[str, CallCost] = {}
    seconds, text = [], ""
    try:
        with timed_nvml(costs):
            for _ in range(scrapes):
                time.sleep(interval_s)
                start = time.perf_counter()
                text = generate_latest(exporter.registry).decode()
                seconds.append(time.perf_counter() - start)
        diagnostics = exporter.reader.diagnostics()
    finally:
        exporter.close()
    return Measured(text, seconds, costs, diagnostics)


# --- comparing ---------------------------------------------------------------------------------------------------


@dataclass
class Check:
    what: str
    ok: bool
    detail: str


@dataclass
class Comparison:
    checks: list[Check] = field(default_factory=list)

    def add(self, what: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(what, ok, detail))

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(USED_TOLERANCE[0], USED_TOLERANCE[1] * max(a, b))


def _by(series: list[Series], name: str) -> list[Series]:
    return [s for s in series if s.name == name]


def compare(smi: Smi, series: list[Series]) -> Comparison:
    """Every GPU, MIG device and process nvidia-smi shows against the exporter's series."""
    result = Comparison()
    totals = {s.labels["gpu_uuid"]: s for s in _by(series, "slicewise_gpu_memory_total_bytes")}
    used = {s.labels["gpu_uuid"]: s for s in _by(series, "slicewise_gpu_memory_used_bytes")}
    for g in smi.gpus:
        t, u = totals.get(g.uuid), used.get(g.uuid)
        if t is None or u is None or g.memory_total_mib is None or g.memory_used_mib is None:
            result.add(f"GPU {g.index} memory", False, f"exporter {t and t.value}, nvidia-smi {g.memory_total_mib}")
            continue
        source = t.labels.get("source", "device")
        if source == "gpu_instances":  # unprivileged in MIG mode: the sum of the GPU instances, by design
            result.add(f"GPU {g.index} memory", True, f"sum of GPU instances (source=gpu_instances): {t.value:.0f} B")
            continue
        ok = abs(t.value - g.memory_total_mib * MIB) <= MIB and _close(u.value, g.memory_used_mib * MIB)
        result.add(
            f"GPU {g.index} memory",
            ok,
            f"total {t.value / MIB:.0f} vs {g.memory_total_mib} MiB, "
            f"used {u.value / MIB:.0f} vs {g.memory_used_mib} MiB",
        )
    _compare_processes(smi, series, result)
    _compare_mig(smi, series, result)
    return result


def _compare_processes(smi: Smi, series: list[Series], result: Comparison) -> None:
    published: dict[tuple[str, int], float] = {}
    for s in _by(series, "slicewise_process_memory_used_bytes"):
        key = (s.labels["gpu_uuid"], int(s.labels["pid"]))
        published[key] = published.get(key, 0.0) + s.value
    # The MPS server is listed by nvidia-smi; the exporter publishes its clients only (see exporter.nvml.reader).
    seen = {(a.gpu_uuid, a.pid): a for a in smi.apps if not a.name.endswith("nvidia-cuda-mps-server")}
    missing = sorted(set(seen) - set(published))
    extra = sorted(set(published) - set(seen))
    result.add(
        "process list", not missing and not extra, f"{len(seen)} in nvidia-smi; missing {missing}, extra {extra}"
    )
    off = [
        (k, published[k] / MIB, a.used_mib)
        for k, a in seen.items()
        if k in published and a.used_mib is not None and not _close(published[k], a.used_mib * MIB)
    ]
    result.add("process memory", not off, f"differing (pid, exporter MiB, nvidia-smi MiB): {off}" if off else "equal")


def _compare_mig(smi: Smi, series: list[Series], result: Comparison) -> None:
    if not smi.gpu_instances:
        return
    uuid_of = {g.index: g.uuid for g in smi.gpus}
    info = {
        (int(s.labels["gpu"]), int(s.labels["gi"]), int(s.labels["ci"])): s for s in _by(series, "slicewise_mig_info")
    }
    smi_devices = {(c.gpu, c.gi, c.ci) for c in smi.compute_instances if c.ci is not None}
    result.add(
        "MIG devices", set(info) == smi_devices, f"exporter {sorted(info)}, nvidia-smi -lci {sorted(smi_devices)}"
    )
    wrong = []
    for gi in smi.gpu_instances:
        for (gpu, gi_id, _ci), s in info.items():
            if (gpu, gi_id) != (gi.gpu, gi.gi):
                continue
            placement = s.labels["placement_start"], s.labels["placement_size"]
            if s.labels["profile"] != gi.profile or (
                placement != ("", "") and placement != (str(gi.start), str(gi.size))
            ):
                wrong.append((gpu, gi_id, s.labels["profile"], placement, gi.profile, (gi.start, gi.size)))
    result.add("MIG profiles and placements", not wrong, f"differing: {wrong}" if wrong else "equal")
    memory = {
        (s.labels["gpu_uuid"], int(s.labels["gi"])): s.value for s in _by(series, "slicewise_mig_memory_total_bytes")
    }
    off = [
        (m.gpu_uuid, m.gi, memory.get((m.gpu_uuid, m.gi)), m.total_mib)
        for m in smi.mig_memory
        if m.total_mib is not None and abs(memory.get((m.gpu_uuid, m.gi), -1) - m.total_mib * MIB) > MIB
    ]
    known = {uuid_of.get(c.gpu) for c in smi.compute_instances}
    result.add("MIG memory", not off, f"differing: {off}" if off else f"equal on {len(smi.mig_memory)} MIG devices")
    if None in known:
        result.add("MIG GPUs", False, "nvidia-smi mig lists a GPU index that --query-gpu does not")


# --- the report --------------------------------------------------------------------------------------------------


def render(smi: Smi, measured: Measured | None, comparison: Comparison) -> str:
    lines = ["# slicewise real-GPU check", ""]
    drivers = sorted({g.driver for g in smi.gpus})
    lines += [f"Host `{platform.node()}`, driver {', '.join(drivers) or '?'}, {len(smi.gpus)} GPU(s): "]
    lines += [f"- GPU {g.index}: {g.name}, MIG {'on' if g.mig else 'off'}" for g in smi.gpus]
    lines += ["", "## Exporter vs nvidia-smi", "", "| check | result | detail |", "|---|---|---|"]
    lines += [f"| {c.what} | {'ok' if c.ok else 'DIFFERS'} | {c.detail} |" for c in comparison.checks]
    if measured is not None:
        n = len(measured.scrape_seconds)
        lines += [
            "",
            "## Cost of the scrape",
            "",
            f"{n} scrapes: median {statistics.median(measured.scrape_seconds) * 1000:.1f} ms, "
            f"max {max(measured.scrape_seconds) * 1000:.1f} ms.",
            "",
            "| NVML call (pynvml) | calls per scrape | ms per scrape | µs per call |",
            "|---|---|---|---|",
        ]
        for name, cost in sorted(measured.costs.items(), key=lambda kv: -kv[1].seconds):
            lines.append(
                f"| {name} | {cost.calls / n:.1f} | {cost.seconds / n * 1000:.2f} "
                f"| {cost.seconds / cost.calls * 1e6:.0f} |"
            )
        lines += ["", "## What the exporter learned about this driver", "", "```"]
        lines += [json.dumps(measured.diagnostics, indent=2, default=str), "```"]
    lines += ["", f"Result: {'everything agrees' if comparison.ok else 'DIFFERENCES (see above)'}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="real-gpu-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(f"real-gpu-check-{platform.node()}"))
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between scrapes")
    parser.add_argument("--nvidia-smi", default="nvidia-smi")
    parser.add_argument("--recorded", type=Path, help="read nvidia-smi's outputs from this directory")
    parser.add_argument("--scrape", type=Path, help="compare this saved scrape instead of running the exporter")
    args = parser.parse_args(argv)
    if args.scrapes < 1 or args.interval < 0:
        print("real-gpu-check: error: --scrapes must be at least 1 and --interval not negative", file=sys.stderr)
        return 2
    if args.recorded is not None and not args.recorded.is_dir():
        print(f"real-gpu-check: error: --recorded {args.recorded} is not a directory", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    measured = None
    if args.scrape is not None:
        text = args.scrape.read_text()
    else:
        measured = measure(args.scrapes, args.interval)  # before nvidia-smi runs, so they see the same processes
        text = measured.scrape
        (args.out / "scrape.prom").write_text(text)
    if args.recorded is not None:
        recorded: Path = args.recorded

        def read(name: str) -> str:
            path = recorded / name
            return path.read_text() if path.exists() else ""

        smi = read_smi(read)
    else:
        smi = read_smi(run_smi(args.nvidia_smi, args.out))
    comparison = compare(smi, parse_scrape(text))
    (args.out / "report.md").write_text(render(smi, measured, comparison))
    data: dict[str, object] = {"checks": [asdict(c) for c in comparison.checks], "smi": asdict(smi)}
    if measured is not None:
        data["costs"] = {k: asdict(v) for k, v in measured.costs.items()}
        data["scrape_seconds"] = measured.scrape_seconds
        data["diagnostics"] = measured.diagnostics
    (args.out / "report.json").write_text(json.dumps(data, indent=2, default=str))
    print(f"real-gpu-check: {'everything agrees' if comparison.ok else 'DIFFERENCES'}; report in {args.out}/report.md")
    return 0 if comparison.ok else 1


if __name__ == "__main__":
    sys.exit(main())
