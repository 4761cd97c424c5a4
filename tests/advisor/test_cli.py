"""``slicewise advise`` end to end: a history file in, the report and configs out, DESIGN.md's exit codes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slicewise.cli import main
from tests.support import free_port

GIB = 1024**3
H100 = "NVIDIA H100 80GB HBM3"


def write_history(path: Path, days: float = 1.0, seed: int = 3, end: int = 1_767_312_000) -> None:
    """A day of one-minute samples up to ``end`` (epoch s): 3 model servers (steady ~14 GiB, ~0.18 of a GPU),
    6 notebooks (5 GiB, idle with 6 % bursts to 0.6), 2 trainers (60 GiB, ~0.95), each alone on an H100 today."""
    rng = np.random.default_rng(seed)
    steps = int(days * 1440)
    times = end - 60 * (steps - 1 - np.arange(steps))
    frames = []

    def workload(name: str, memory_gib: float, sm: np.ndarray, i: int) -> None:
        n = len(times)
        memory = (memory_gib + rng.normal(0, 0.2, n)).clip(0.5) * GIB
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": times,
                    "workload": name,
                    "node": f"node-{i // 8}",
                    "gpu_uuid": f"GPU-{i:08d}-0000-0000-0000-000000000000",
                    "gpu_model": H100,
                    "mig_profile": "",
                    "sharing": "exclusive",
                    "memory_used_bytes": memory.astype(np.int64),
                    "sm_active_gpu_fraction": sm.clip(0, 1).round(4),
                    "namespace": name.split("/", maxsplit=1)[0],
                }
            )
        )

    n = len(times)
    i = 0
    for k in range(3):
        workload(f"serving/ranker-{k}", 14 + k, 0.16 + rng.normal(0, 0.015, n), i)
        i += 1
    for k in range(6):
        bursts = rng.random(n) < 0.06
        workload(f"research/notebook-{k}", 5 + 0.3 * k, np.where(bursts, rng.uniform(0.3, 0.6, n), 0.0), i)
        i += 1
    for k in range(2):
        workload(f"train/llm-{k}", 60 + 3 * k, 0.95 + rng.normal(0, 0.02, n), i)
        i += 1
    pd.concat(frames).sort_values(["timestamp", "workload"]).to_csv(path, index=False)


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "fleet.csv"
    write_history(path)
    return path


def test_advise_writes_the_out_directory_and_prints_json(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["advise", "--history", str(history), "--out", str(tmp_path / "out"), "--format", "json"], capsys
    )
    assert code == 0, err
    rec = json.loads(out)
    assert rec["plan"]["gpus_now"] == 11
    assert rec["plan"]["gpus_lower_bound"] <= rec["plan"]["gpus_needed"] < 11
    modes = {w["workload"].rsplit("-", 1)[0]: w["decision"]["mode"] for w in rec["workloads"]}
    assert modes == {"serving/ranker": "mig", "research/notebook": "timeslice", "train/llm": "exclusive"}
    for name in ("recommendation.json", "report.html", "report.md", "advisor.prom", "configs/mig-parted.yaml"):
        assert (tmp_path / "out" / name).is_file()
    assert json.loads((tmp_path / "out" / "recommendation.json").read_text())["plan"] == rec["plan"]
    assert str(tmp_path / "out") in err


@pytest.mark.parametrize(("fmt", "marker"), [("text", "GPU"), ("markdown", "#"), ("html", "<html")])
def test_formats(history: Path, capsys: pytest.CaptureFixture[str], fmt: str, marker: str) -> None:
    code, out, err = run(["advise", "--history", str(history), "--window", "12h", "--format", fmt], capsys)
    assert code == 0, err
    assert marker in out


def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["advise", "--history", str(tmp_path / "missing.csv")], capsys)
    assert code == 2 and "missing.csv: no such history file" in err
    broken = tmp_path / "broken.csv"
    broken.write_text("timestamp,workload\n1,a\n")
    code, _, err = run(["advise", "--history", str(broken)], capsys)
    assert code == 2 and "broken.csv" in err and "required column is missing" in err
    code, _, err = run(["advise"], capsys)
    assert code == 2 and "exactly one of --prometheus URL or --history FILE" in err
    code, _, err = run(["advise", "--history", str(broken), "--prometheus", "http://127.0.0.1:9"], capsys)
    assert code == 2
    code, _, err = run(["advise", "--prometheus", "prometheus:9090"], capsys)
    assert code == 2 and "not an http:// or https:// URL" in err
    code, _, err = run(["advise", "--history", str(broken), "--window", "two weeks"], capsys)
    assert code == 2 and "duration" in err


def test_a_failed_run_leaves_the_previous_report_intact(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert run(["advise", "--history", str(history), "--out", str(out)], capsys)[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    broken = tmp_path / "broken.csv"
    broken.write_text(
        "timestamp,workload,node,gpu_uuid,gpu_model,mig_profile,sharing,memory_used_bytes,sm_active_gpu_fraction\n"
        "1767225600,a,n,g,NVIDIA H100 80GB HBM3,,exclusive,-5,0.1\n"
    )
    code, _, err = run(["advise", "--history", str(broken), "--out", str(out)], capsys)
    assert code == 2 and "negative" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.slow
@pytest.mark.needs_binary
def test_advise_from_a_real_prometheus_matches_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same six hours of history, as a file and backfilled into a real Prometheus (Debian's package): the same
    GPUs now and the same decisions."""
    from advisor.history import read_history
    from tests.advisor.history.openmetrics import write_openmetrics
    from tests.advisor.history.server import prometheus_loaded_with

    path = tmp_path / "fleet.csv"
    write_history(path, days=0.25, end=int(time.time()) // 60 * 60 - 120)
    code, out, err = run(["advise", "--history", str(path), "--format", "json"], capsys)
    assert code == 0, err
    from_file = json.loads(out)
    with prometheus_loaded_with(write_openmetrics(read_history(path), tmp_path / "fleet.om"), tmp_path) as url:
        report = tmp_path / "report"
        code, out, err = run(
            ["advise", "--prometheus", url, "--window", "7h", "--format", "json", "--out", str(report)], capsys
        )
    assert code == 0, err
    from_prometheus = json.loads(out)
    backtest = json.loads((report / "backtest.json").read_text())  # replayed on the samples Prometheus gave
    assert backtest["unavailable"] is None and len(backtest["origins"]) == 2
    assert from_prometheus["source"] == url
    assert from_prometheus["plan"]["gpus_now"] == from_file["plan"]["gpus_now"] == 11

    def decisions(rec: dict) -> dict[str, tuple[str, str | None, int | None]]:
        return {
            w["workload"]: (w["decision"]["mode"], w["decision"]["profile"], w["decision"]["replicas"])
            for w in rec["workloads"]
        }

    assert decisions(from_prometheus) == decisions(from_file)
    # the samples behind Prometheus's answers are kept as history rows (advisor/history/timeline.py): the same
    # presence, measured contention and shared slices as the file, so the same plan
    assert from_prometheus["plan"]["gpus_needed"] == from_file["plan"]["gpus_needed"]
    assert from_prometheus["plan"]["gpus_busy_max"] == from_file["plan"]["gpus_busy_max"]


@pytest.mark.slow
def test_unreachable_prometheus_fails_with_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["advise", "--prometheus", f"http://127.0.0.1:{free_port()}", "--window", "1h"], capsys)
    assert code == 1
    assert "127.0.0.1" in err


def test_prometheus_auth_flags_are_checked_before_anything_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLICEWISE_PROMETHEUS_PASSWORD", raising=False)
    monkeypatch.delenv("SLICEWISE_PROMETHEUS_BEARER_TOKEN", raising=False)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: a check that passes would fail with exit 1
    code, _, err = run(["advise", "--prometheus", url, "--prometheus.username", "ops"], capsys)
    assert code == 2 and "SLICEWISE_PROMETHEUS_PASSWORD" in err
    token = tmp_path / "token"
    token.write_text("")
    code, _, err = run(["advise", "--prometheus", url, "--prometheus.bearer-token-file", str(token)], capsys)
    assert code == 2 and f"{token} is empty" in err
    code, _, err = run(["advise", "--history", str(token), "--prometheus.username", "ops"], capsys)
    assert code == 2 and "go with --prometheus URL" in err
    monkeypatch.setenv("SLICEWISE_PROMETHEUS_PASSWORD", "s3cret")
    token.write_text("tok\n")
    args = ["advise", "--prometheus", url, "--prometheus.username", "ops", "--prometheus.bearer-token-file", str(token)]
    code, _, err = run(args, capsys)
    assert code == 2 and "not both" in err
    # with valid auth it goes on to read, and fails for the unreachable server, never printing the secret
    code, _, err = run(["advise", "--prometheus", url, "--prometheus.username", "ops"], capsys)
    assert code == 1 and "s3cret" not in err
