"""Malformed input never gets further than one error: a corpus of bad history files and schedule configs
(tests/advisor/corpus/, with the words each must produce in expected.yaml) and generated ones.

Every case: exit code 2, one ``slicewise: error:`` message naming the file (and the row and column, or the key
and line), no traceback, no RuntimeWarning, and the report already in ``--out`` (or the config's output_dir)
byte for byte as it was.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from slicewise.cli import main
from tests.advisor.test_cli import write_history

CORPUS = Path(__file__).parent / "corpus"
EXPECTED = yaml.safe_load((CORPUS / "expected.yaml").read_text())


def tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real report from a good history: what every failed run must leave alone."""
    base = tmp_path_factory.mktemp("previous")
    write_history(base / "fleet.csv", days=0.1)
    with pytest.raises(SystemExit) as exc:
        main(["advise", "--history", str(base / "fleet.csv"), "--out", str(base / "out"), "--window", "2h"])
    assert exc.value.code == 0
    return base / "out"


def fails_cleanly(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command; it must exit 2 with one error message and nothing else on stderr. Returns the message."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SystemExit) as exc:
            main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert "Traceback" not in err
    assert err.startswith("slicewise: error: ") and err.count("slicewise: error:") == 1, err
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    return err


def _copy_report(previous: Path, out: Path) -> dict[str, bytes]:
    shutil.copytree(previous, out)
    return tree(out)


@pytest.mark.parametrize("name", sorted(EXPECTED["history"]))
def test_a_bad_history_file(name: str, previous: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = CORPUS / "history" / name
    before = _copy_report(previous, tmp_path / "out")
    err = fails_cleanly(["advise", "--history", str(history), "--out", str(tmp_path / "out")], capsys)
    assert err.count("\n") == 1, err  # one line
    assert str(history) in err and EXPECTED["history"][name] in err, err
    assert tree(tmp_path / "out") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


GOOD_ROWS = {
    "timestamp": pa.array([1795370400, 1795370460], pa.int64()),
    "workload": pa.array(["team/a", "team/a"]),
    "node": pa.array(["node-1", "node-1"]),
    "gpu_uuid": pa.array(["GPU-1", "GPU-1"]),
    "gpu_model": pa.array(["NVIDIA H100 80GB HBM3"] * 2),
    "mig_profile": pa.array(["", ""]),
    "sharing": pa.array(["exclusive"] * 2),
    "memory_used_bytes": pa.array([1 << 30, 1 << 30], pa.int64()),
    "sm_active_gpu_fraction": pa.array([0.5, 0.5]),
}

PARQUET_CASES = {
    "list-typed-workload": ({"workload": pa.array([["team/a"], ["team/a"]])}, "column 'workload': a nested Parquet"),
    "list-typed-memory": ({"memory_used_bytes": pa.array([[1], [2]])}, "column 'memory_used_bytes': a nested"),
    "struct-node": ({"node": pa.array([{"n": "a"}, {"n": "b"}])}, "column 'node': a nested Parquet column"),
    "null-node": ({"node": pa.array(["node-1", None])}, "row 2, column 'node': missing value"),
    "memory-inf": ({"memory_used_bytes": pa.array([1.0, float("inf")])}, "row 2, column 'memory_used_bytes'"),
    "memory-as-text": ({"memory_used_bytes": pa.array(["1", "x"])}, "row 2, column 'memory_used_bytes'"),
    "bool-fraction": ({"sm_active_gpu_fraction": pa.array([True, False])}, "expected a number, not true/false"),
}


@pytest.mark.parametrize("case", sorted(PARQUET_CASES))
def test_a_bad_parquet_file(case: str, previous: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    change, words = PARQUET_CASES[case]
    history = tmp_path / f"{case}.parquet"
    pq.write_table(pa.table({**GOOD_ROWS, **change}), history)
    before = _copy_report(previous, tmp_path / "out")
    err = fails_cleanly(["advise", "--history", str(history), "--out", str(tmp_path / "out")], capsys)
    assert err.count("\n") == 1 and str(history) in err and words in err, err
    assert tree(tmp_path / "out") == before


def test_a_truncated_parquet_file(previous: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = tmp_path / "cut.parquet"
    pq.write_table(pa.table(GOOD_ROWS), history)
    history.write_bytes(history.read_bytes()[:-40])
    err = fails_cleanly(["advise", "--history", str(history)], capsys)
    assert "cut.parquet: not a readable Parquet file" in err


def _schedule_case(name: str, data: bytes, previous: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    config = tmp_path / name
    config.write_bytes(data)
    before = _copy_report(previous, tmp_path / "out" / "2026-W48")
    err = fails_cleanly(["schedule", "--config", str(config), "--once"], capsys)
    assert err.startswith(f"slicewise: error: {config}: "), err
    assert tree(tmp_path / "out" / "2026-W48") == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["2026-W48"]  # no state, no ledger: nothing ran
    return err


@pytest.mark.parametrize("name", sorted(EXPECTED["schedule"]))
def test_a_bad_schedule_config(name: str, previous: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _schedule_case(name, (CORPUS / "schedule" / name).read_bytes(), previous, tmp_path, capsys)
    assert EXPECTED["schedule"][name] in err, err
    assert "hunter2" not in err  # a config's values are not echoed: one may be a secret


@pytest.mark.parametrize(
    "nesting",
    ["window: " + "[" * 5000 + "]" * 5000, "email: " + "{a: " * 5000 + "1" + "}" * 5000, "- " * 5000 + "x"],
)
def test_a_config_nested_5000_deep(
    nesting: str, previous: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _schedule_case("deep.yaml", nesting.encode(), previous, tmp_path, capsys)
    assert "nested too deeply" in err or "problem" in err, err
