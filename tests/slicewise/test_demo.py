"""`slicewise demo` end to end, as a newcomer runs it: the installed command on a fresh directory."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from advisor.model import Recommendation
from tests.support import require_binary

pytestmark = pytest.mark.slow


def _slicewise() -> str:
    return str(Path(sys.executable).with_name("slicewise"))


def test_demo_writes_the_report_configs_and_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run = subprocess.run(
        [_slicewise(), "demo", "--out", str(out), "--days", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    for name in (
        "recommendation.json",
        "report.html",
        "report.md",
        "advisor.prom",
        "configs/mig-parted.yaml",
        "configs/device-plugin.yaml",
        "configs/resource-requests.yaml",
        "history/fleet.parquet",
        "history/fleet.parquet.truth.csv",
    ):
        assert (out / name).is_file(), name

    rec = Recommendation.from_json((out / "recommendation.json").read_bytes())
    truth = (out / "history/fleet.parquet.truth.csv").read_text().splitlines()
    assert len(rec.workloads) > 50
    assert {w.workload for w in rec.workloads} <= {line.split(",")[0] for line in truth[1:]}
    assert rec.classes and rec.plan.gpus_needed >= rec.plan.gpus_lower_bound > 0
    assert {w.decision.mode for w in rec.workloads} >= {"mig", "exclusive"}
    for w in rec.workloads:  # the contract: nobody below their own peak
        assert w.decision.memory_limit_bytes >= w.features.memory_peak_bytes, w.workload
    assert yaml.safe_load((out / "configs/mig-parted.yaml").read_text())["version"] == "v1"
    assert "slicewise_advisor_gpus{" in (out / "advisor.prom").read_text()

    # the summary: the headline numbers as recorded, every class, and where the files are
    m = re.search(r"GPUs: (\d+) in the fleet \((\d+) busy at once at most\) -> (\d+) needed", run.stdout)
    assert m, run.stdout
    assert (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (
        rec.plan.gpus_now,
        rec.plan.gpus_busy_max,
        rec.plan.gpus_needed,
    )
    for cls in rec.classes:
        assert f"  {cls.id} " in run.stdout
    assert str((out / "report.html").resolve()) in run.stdout
    assert json.loads((out / "recommendation.json").read_text())["version"] == rec.version


def _children(pid: int) -> set[int]:
    """Pids whose parent is ``pid``, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_live_demo_serves_prometheus_and_stops_cleanly_on_ctrl_c() -> None:
    require_binary("prometheus")
    proc = subprocess.Popen(
        [_slicewise(), "demo", "--live"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 180
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(lines)
        assert "Press Ctrl-C" in text, text
        prometheus = re.search(r"prometheus\s+(http://127\.0\.0\.1:\d+)", text)
        exporters = re.findall(r"exporter (\S+)\s+(http://127\.0\.0\.1:\d+/metrics)", text)
        assert prometheus and len(exporters) >= 2, text

        # every exporter is scraped, with the node as a target label, and the rules are loaded
        url = prometheus.group(1)
        up: dict[str, str] = {}
        while time.monotonic() < deadline and len(up) < len(exporters):
            targets = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
            up = {t["labels"]["node"]: t["health"] for t in targets if t["health"] == "up"}
            time.sleep(1)
        assert set(up) == {node for node, _ in exporters}
        groups = httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        kinds = {rule["type"] for group in groups for rule in group["rules"]}
        assert kinds == {"recording", "alerting"}, "slicewise's recording rules and alerts are not both loaded"
        result = httpx.get(f"{url}/api/v1/query", params={"query": "count(slicewise_gpu_info)"}, timeout=5).json()
        assert float(result["data"]["result"][0]["value"][1]) > 8

        children = _children(proc.pid)
        assert len(children) == len(exporters) + 1
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, rest
        assert "every process has exited" in rest
        assert not [pid for pid in children if _alive(pid)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
