"""``slicewise backtest`` end to end: a history file in, text or JSON out, backtest.json written; exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.backtest import BacktestResult
from slicewise.cli import main
from tests.advisor.backtest.histories import hand_built


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bt") / "hand.csv"
    frame = hand_built()
    frame["timestamp"] = frame["timestamp"].dt.as_unit("s").astype("int64")  # epoch seconds, as in CSV histories
    frame.to_csv(path, index=False)
    return path


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_json_output_and_backtest_json_in_out(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(
        [
            "backtest",
            "--history",
            str(history),
            "--origin",
            "50%",
            "--origin",
            "0.7",
            "--format",
            "json",
            "--out",
            str(tmp_path / "out"),
        ],
        capsys,
    )
    assert code == 0, err
    result = BacktestResult.from_json(out)
    assert len(result.origins) == 2 and result.source == str(history)
    written = json.loads((tmp_path / "out" / "backtest.json").read_text())
    assert written == json.loads(out)
    assert "backtest.json" in err


def test_text_output_says_what_the_advice_would_have_done(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["backtest", "--history", str(history), "--origin", "2026-01-01T00:00:00Z"], capsys)
    assert code == 0
    assert "Origin 2026-01-01 00:00 UTC: advice fitted before 2026-01-01 00:00 UTC, replayed on the next" in out
    assert "OOM sample" in out and "of samples slowed" in out and "GPUs needed" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--origin", "150%"], "between 0 and 1"),
        (["--origin", "yesterday"], "not a percentage"),
        (["--origin", "2020-01-01T00:00:00Z"], "outside the history"),
    ],
)
def test_a_bad_origin_exits_2(history: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["backtest", "--history", str(history), *args], capsys)
    assert code == 2 and message in err and out == ""


def test_a_bad_file_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,workload\n1,a\n")
    code, _, err = _run(["backtest", "--history", str(bad), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "required column is missing" in err
    assert not (tmp_path / "out").exists()
    code, _, err = _run(["backtest", "--history", str(tmp_path / "missing.parquet")], capsys)
    assert code == 2 and "no such history file" in err


def test_exactly_one_source_and_prometheus_says_what_is_missing(
    history: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["backtest"], capsys)
    assert code == 2 and "exactly one of" in err
    code, _, err = _run(["backtest", "--prometheus", "http://127.0.0.1:9"], capsys)
    assert code == 1 and "127.0.0.1:9" in err and "Traceback" not in err  # read from Prometheus: unreachable
    code, _, err = _run(["backtest", "--prometheus", "ftp://user:s3cret@127.0.0.1:9"], capsys)
    assert code == 2 and "not an http:// or https:// URL" in err and "s3cret" not in err
    code, _, err = _run(["backtest", "--history", str(history), "--end", "2026-11-23T00:00:00Z"], capsys)
    assert code == 2 and "go with --prometheus URL" in err
    code, _, err = _run(["backtest", "--prometheus", "http://127.0.0.1:9", "--end", "yesterday"], capsys)
    assert code == 2 and "not an RFC 3339 time" in err
