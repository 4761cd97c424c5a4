"""A workload that holds no memory and no SMs for the whole window (a pod that waits on a queue with the CUDA
context not yet created) is advised like any other: it used to end ``advise`` with ZeroDivisionError in
advisor/decide/fits.py (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.advisor.test_cli import run, write_history


@pytest.fixture(scope="module")
def idle_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("idle") / "fleet.csv"
    write_history(path, days=0.25)
    frame = pd.read_csv(path, keep_default_na=False)
    idle = frame[frame["workload"] == "serving/ranker-0"].copy()
    idle["workload"] = "queue/waiting"
    idle["namespace"] = "queue"
    idle["gpu_uuid"] = "GPU-99999999-0000-0000-0000-000000000000"
    idle["memory_used_bytes"] = 0
    idle["sm_active_gpu_fraction"] = 0.0
    pd.concat([frame, idle]).to_csv(path, index=False)
    return path


def test_an_idle_workload_gets_a_decision(idle_history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["advise", "--history", str(idle_history), "--window", "6h", "--format", "json"], capsys)
    assert code == 0, err
    assert "Traceback" not in err and "ZeroDivisionError" not in err
    decisions = {w["workload"]: w["decision"] for w in json.loads(out)["workloads"]}
    idle = decisions["queue/waiting"]
    assert idle["mode"] in ("mig", "timeslice")  # the smallest share there is, never a whole GPU
    assert idle["memory_limit_bytes"] > 0
