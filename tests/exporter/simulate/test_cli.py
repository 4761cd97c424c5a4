"""``slicewise simulate``: the command users run, as installed (exit codes come from the console script)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.history.file import read_history


def _slicewise(*args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("slicewise") or str(Path(sys.executable).with_name("slicewise"))
    if not Path(script).exists():
        pytest.fail("console script slicewise is not installed: run scripts/test (pip install -e .)")
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=120, check=False)


def test_simulate_writes_history_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "out" / "fleet.parquet"
    done = _slicewise("simulate", "--out", str(out), "--days", "0.5", "--seed", "2", "--scenario", "mps")
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}:" in done.stdout and "2026-11-22 12:00 UTC to 2026-11-23 00:00 UTC" in done.stdout
    assert out.with_name("fleet.parquet.truth.csv").is_file()
    assert set(read_history(out).sharing.unique()) == {"mps"}


def test_simulate_refuses_bad_input_with_exit_2(tmp_path: Path) -> None:
    bad = _slicewise("simulate", "--out", str(tmp_path / "f.parquet"), "--scenario", "nope")
    assert bad.returncode == 2 and "unknown scenario 'nope'" in bad.stderr
    bad = _slicewise("simulate", "--out", str(tmp_path / "f.txt"))
    assert bad.returncode == 2 and "unknown history format" in bad.stderr
    assert not list(tmp_path.iterdir())
