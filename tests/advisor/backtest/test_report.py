"""Every report has a backtest section, and its first screen says what last period's advice would have done;
``slicewise advise --history --out`` writes backtest.json beside recommendation.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from advisor.backtest import BacktestResult, run_backtest, unavailable
from advisor.backtest.model import NEEDS_ROWS
from advisor.model import Recommendation
from advisor.pipeline import from_history, recommend_data
from advisor.report import render_html, render_markdown, render_text
from slicewise.cli import main
from tests.advisor.backtest.histories import GIB, hand_built


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    frame = hand_built()
    # ranker-0 grows past any slice sized for its first day: the backtest has something to show
    start, end = frame["timestamp"].min(), frame["timestamp"].max()
    late = (frame["workload"] == "serving/ranker-0") & (frame["timestamp"] > start + (end - start) * 0.5)
    frame.loc[late, "memory_used_bytes"] = 70 * GIB
    return frame


@pytest.fixture(scope="module")
def advised(history: pd.DataFrame) -> tuple[Recommendation, BacktestResult]:
    rec = recommend_data(from_history(history, "hand.csv", None))
    return rec, run_backtest(history, (0.5,), source="hand.csv")


def test_the_first_screen_says_what_the_advice_would_have_done(
    advised: tuple[Recommendation, BacktestResult],
) -> None:
    rec, backtest = advised
    o = backtest.origins[0]
    grown = next(w for w in o.workloads if w.workload == "serving/ranker-0")
    assert grown.mode in ("mig", "mps") and grown.oom_samples == grown.samples > 0
    line = f"Backtest: advice fitted before {o.origin:%Y-%m-%d %H:%M} UTC, replayed on the next 24 hours:"
    assert backtest.headline.startswith(line)
    assert f"{grown.oom_samples} OOM samples (1 workload)" in backtest.headline

    text = render_text(rec, backtest=backtest)
    assert line in " ".join(text.splitlines()[:6])
    assert "BACKTEST" in text and "serving/ranker-0" in text.split("BACKTEST", 1)[1]
    md = render_markdown(rec, backtest=backtest)
    assert line in "\n".join(md.splitlines()[:12])
    section = md.split("## Backtest", 1)[1].split("\n## ", 1)[0]
    assert f"| **{o.totals.oom_samples}** samples |" in section and "`serving/ranker-0`" in section
    html = render_html(rec, backtest=backtest).document
    assert html.index("Backtest: advice fitted before") < html.index(">The fleet<")
    assert ">Backtest<" in html


def test_without_a_backtest_the_section_says_why(advised: tuple[Recommendation, BacktestResult]) -> None:
    rec, _ = advised
    assert "Backtest: not run for this report" in render_text(rec)
    prometheus = dataclasses.replace(rec, source="http://127.0.0.1:9090")
    for report in (render_text(prometheus), render_markdown(prometheus), render_html(prometheus).document):
        assert "per-sample history rows" in report
    assert "per-sample history rows" in render_markdown(rec, backtest=unavailable(rec.source))
    assert unavailable("x").headline == f"Backtest: {NEEDS_ROWS}."


def test_advise_writes_backtest_json_beside_the_recommendation(
    history: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hand.csv"
    frame = history.copy()
    frame["timestamp"] = frame["timestamp"].dt.as_unit("s").astype("int64")
    frame.to_csv(path, index=False)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["advise", "--history", str(path), "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert exit_info.value.code in (0, None), err
    backtest = BacktestResult.from_json((out / "backtest.json").read_text())
    assert json.loads((out / "recommendation.json").read_text())["source"] == backtest.source == str(path)
    assert [round(o.origin.timestamp()) for o in backtest.origins] == [
        round(o.timestamp()) for o in _default_origins(history)
    ]
    assert backtest.headline in (out / "report.md").read_text().replace("\n", " ") or "Backtest:" in stdout
    assert "Backtest: advice fitted before" in stdout


def _default_origins(history: pd.DataFrame) -> list[pd.Timestamp]:
    start, end = history["timestamp"].min(), history["timestamp"].max()
    return [start + (end - start) * f for f in (0.5, 0.7)]


def test_advise_no_backtest_skips_it_and_the_report_says_so(
    history: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hand.csv"
    frame = history.copy()
    frame["timestamp"] = frame["timestamp"].dt.as_unit("s").astype("int64")
    frame.to_csv(path, index=False)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["advise", "--history", str(path), "--no-backtest", "--out", str(out), "--format", "markdown"])
    stdout, err = capsys.readouterr()
    assert exit_info.value.code in (0, None), err
    assert (out / "recommendation.json").is_file() and not (out / "backtest.json").exists()
    assert "Backtest: not run for this report" in stdout
