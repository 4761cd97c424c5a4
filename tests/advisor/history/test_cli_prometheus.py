"""``slicewise simulate --out FILE.om`` backfilled into a real Prometheus, then ``slicewise advise --prometheus``
on that past window (``--end``), cut into chunks by a small sample cap: the same advice as the history file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from slicewise.cli import main
from tests.advisor.history.server import prometheus_serving
from tests.support import require_binary

END = "2026-11-22T23:59:00Z"  # the simulated histories' last sample: the file's window ends there too


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


@pytest.mark.parametrize(
    ("end", "words"),
    [("yesterday", "not an RFC 3339 time"), ("2026-11-23T00:00:00", "has no time zone")],
)
def test_a_bad_end_is_a_usage_error(end: str, words: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["advise", "--prometheus", "http://127.0.0.1:9", "--end", end], capsys)
    assert code == 2 and words in err


def test_prometheus_options_do_not_go_with_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["advise", "--history", str(tmp_path / "x.csv"), "--end", END], capsys)
    assert code == 2 and "--end goes with --prometheus" in err
    code, _, err = run(["advise", "--history", str(tmp_path / "x.csv"), "--prometheus.recording-rules"], capsys)
    assert code == 2 and "go with --prometheus URL" in err
    code, _, err = run(["advise", "--history", str(tmp_path / "x.csv"), "--prometheus.step", "5m"], capsys)
    assert code == 2 and "go with --prometheus URL" in err


@pytest.mark.parametrize("step", ["5s", "2h", "soon"])
def test_a_step_out_of_bounds_is_a_usage_error(step: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["advise", "--prometheus", "http://127.0.0.1:9", "--prometheus.step", step], capsys)
    assert code == 2 and ("step" in err or "duration" in err) and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.needs_binary
def test_simulated_openmetrics_through_prometheus_gives_the_files_advice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Six hours of the mixed fleet, as a file and as OpenMetrics backfilled with promtool; advised over the same
    past window, the Prometheus path cut into chunks (a 20,000-sample cap): the same decisions and GPUs now.

    GPUs needed may differ: a history file also tells who ran at the same time (``Presence``), which lets the plan
    pack workloads that never overlap; the Prometheus source assumes everyone always runs (advisor.pipeline), so
    its plan can only need as many GPUs or more."""
    simulate = ["simulate", "--days", "0.25", "--seed", "3"]
    assert run([*simulate, "--out", str(tmp_path / "fleet.parquet")], capsys)[0] == 0
    code, out, err = run([*simulate, "--out", str(tmp_path / "fleet.om")], capsys)
    assert code == 0, err
    assert "samples in" in out and (tmp_path / "fleet.om.truth.csv").is_file()
    assert (tmp_path / "fleet.om").read_text().endswith("# EOF\n")
    data = tmp_path / "tsdb"
    subprocess.run(
        [
            require_binary("promtool"),
            *("tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=336h"),
            *(str(tmp_path / "fleet.om"), str(data)),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    code, out, err = run(["advise", "--history", str(tmp_path / "fleet.parquet"), "--format", "json"], capsys)
    assert code == 0, err
    from_file = json.loads(out)
    with prometheus_serving(data, tmp_path, lookback="59s") as url:
        args = ["advise", "--prometheus", url, "--end", END, "--window", "6h", "--format", "json"]
        args += ["--prometheus.max-samples", "20000", "--prometheus.tenant", "team-a"]
        code, out, err = run(args, capsys)
        assert code == 0, err
        from_prometheus = json.loads(out)
        # the backtest replays the rows behind Prometheus's answers: the file's replay, sample for sample
        backtest = ["backtest", "--window", "6h", "--format", "json"]
        code, out, err = run([*backtest, "--prometheus", url, "--end", END], capsys)
        assert code == 0, err
        replayed_from_prometheus = json.loads(out)
        code, out, err = run([*backtest, "--prometheus", url, "--end", END, "--prometheus.step", "5m"], capsys)
        assert code == 0, err
        binned = json.loads(out)
    code, out, err = run([*backtest, "--history", str(tmp_path / "fleet.parquet")], capsys)
    assert code == 0, err
    replayed_from_file = json.loads(out)
    totals = [[o["totals"] for o in r["origins"]] for r in (replayed_from_file, replayed_from_prometheus)]
    assert totals[0] == totals[1] and len(totals[0]) == 2
    # --prometheus.step 5m: the same replay over 5-minute rows (each its bin's largest memory), a fifth as many
    for fine, coarse in zip(totals[0], (o["totals"] for o in binned["origins"]), strict=True):
        assert fine["samples"] / 6 < coarse["samples"] < fine["samples"] / 4

    def decisions(rec: dict) -> dict[str, tuple[str, str | None]]:
        return {w["workload"]: (w["decision"]["mode"], w["decision"]["profile"]) for w in rec["workloads"]}

    assert len(decisions(from_file)) > 40
    assert decisions(from_prometheus) == decisions(from_file)
    assert from_prometheus["plan"]["gpus_now"] == from_file["plan"]["gpus_now"]
    assert from_prometheus["plan"]["gpus_needed"] >= from_file["plan"]["gpus_needed"]
