"""``--out DIR`` is replaced as a whole: a process killed at any filesystem step leaves DIR entirely the old report
or entirely the new one, and the next run leaves no litter beside it.

Two ways to kill: in a forked child an audit hook ends the process (``os._exit``, no cleanup runs) before its N-th
filesystem call, for every N until the write completes; and the real ``slicewise advise`` under strace, killed at
each rename it makes (``strace -e inject=...:signal=KILL``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from advisor import output
from slicewise import atomic
from slicewise.errors import BadInput
from tests.support import REPO, require_binary

# audit events that touch the filesystem (https://docs.python.org/3/library/audit_events.html)
_FS_EVENTS = ("open", "os.", "shutil.", "tempfile.", "ctypes.call_function", "fcntl.flock")

OLD = {
    "recommendation.json": b'{"run": "old"}\n',
    "report.html": b"<!doctype html>old",
    "report.md": b"# old\n",
    "configs/mig-parted.yaml": b"old: 1\n",
    "configs/nos.yaml": b"old nos\n",  # the new report has no nos.yaml: it must not survive
    "advisor.prom": b"# old\n",
}
NEW = {
    "recommendation.json": b'{"run": "new"}\n',
    "report.html": b"<!doctype html>new",
    "report.md": b"# new\n",
    "configs/mig-parted.yaml": b"new: 1\n",
    "configs/device-plugin.yaml": b"new dp\n",
    "advisor.prom": b"# new\n",
}
CARRIED = {"history/fleet.csv": b"timestamp,workload\n", "notes.txt": b"mine\n"}  # not the report's: kept


def tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def _write_killed_at(out: Path, files: dict[str, bytes], step: int) -> int:
    """Fork; the child writes ``files`` and dies before its ``step``-th filesystem call. Returns its exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        calls = 0

        def hook(event: str, _args: object) -> None:
            nonlocal calls
            if event.startswith(_FS_EVENTS):
                calls += 1
                if calls >= step:
                    os._exit(137)

        try:
            sys.addaudithook(hook)
            output.write_files(out, files)
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_kill_at_every_filesystem_step_leaves_old_or_new(tmp_path: Path) -> None:
    old_tree = OLD | CARRIED
    new_tree = NEW | CARRIED
    step, outcomes = 0, {"old": 0, "new": 0}
    while True:
        step += 1
        assert step < 500, "the write never completed"
        case = tmp_path / f"step{step}"
        out = case / "out"
        output.write_files(out, OLD)
        for name, data in CARRIED.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
        code = _write_killed_at(out, NEW, step)
        assert code in (0, 137), f"step {step}: the child failed instead of being killed"
        seen = tree(out)
        assert seen in (old_tree, new_tree), f"killed at step {step}: a mix of old and new: {sorted(seen)}"
        outcomes["old" if seen == old_tree else "new"] += 1
        # the next run succeeds and removes whatever the killed one left
        output.write_files(out, NEW)
        assert tree(out) == new_tree
        assert sorted(p.name for p in case.iterdir()) == ["out"], f"litter after step {step}"
        if code == 0:
            break
    assert outcomes["old"] >= 5 and outcomes["new"] >= 1, outcomes


def test_a_live_runs_staging_is_not_removed(tmp_path: Path) -> None:
    """Two writers on one DIR: the cleanup of the second does not pull the first's half-built tree away."""
    out = tmp_path / "out"
    staging = tmp_path / ".out.new-live"
    staging.mkdir()
    fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
        output.write_files(out, NEW)
        assert staging.is_dir()
    finally:
        os.close(fd)
    output.write_files(out, NEW)
    assert not staging.exists()


def test_a_crash_between_the_fallback_renames_is_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where RENAME_EXCHANGE is missing, the old tree is moved aside, then the new one in: a crash between puts the
    old one back on the next run."""
    out = tmp_path / "out"
    output.write_files(out, OLD)
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    real_rename = os.rename
    calls = []

    def crash_on_second(src: object, dst: object) -> None:
        calls.append((src, dst))
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands in for the kill; nothing below it may tidy up
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic.os, "rename", crash_on_second)
    monkeypatch.setattr(atomic, "_remove", lambda path: None)
    with pytest.raises(KeyboardInterrupt):
        output.write_files(out, NEW)
    assert not out.exists()  # the window the fallback cannot close
    monkeypatch.undo()
    atomic.remove_leftovers(out)
    assert tree(out) == OLD
    output.write_files(out, NEW)
    assert tree(out) == NEW
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_symlinked_out_switches_the_directory_it_points_to(tmp_path: Path) -> None:
    real = tmp_path / "reports"
    output.write_files(real, OLD)
    link = tmp_path / "out"
    link.symlink_to(real)
    output.write_files(link, NEW)
    assert link.is_symlink() and tree(link) == NEW == tree(real)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "reports"]


def _advise(history: Path, out: Path, *strace: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-c",
        "from slicewise.cli import main; main()",
        "advise",
        "--history",
        str(history),
        "--out",
        str(out),
    ]
    return subprocess.run(
        [*strace, *command, "--window", "6h"], capture_output=True, text=True, cwd=REPO, timeout=120, check=False
    )


@pytest.mark.slow
def test_advise_killed_at_each_rename_leaves_old_or_new(tmp_path: Path) -> None:
    strace = require_binary("strace")
    probe = subprocess.run([strace, "-f", "-o", os.devnull, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:  # a container without ptrace: the forked-kill test above covers the same ground
        pytest.skip(f"strace cannot trace here: {probe.stderr.strip()[:200]}")
    from exporter.simulate.history import write_history

    old_history, new_history = tmp_path / "old.csv", tmp_path / "new.csv"
    write_history(old_history, scenario="h100-mig", days=0.25, seed=1)
    write_history(new_history, scenario="h100-mig", days=0.25, seed=2)
    out = tmp_path / "run" / "out"
    trace = tmp_path / "renames.txt"
    counted = _advise(new_history, out, strace, "-f", "-qq", "-o", str(trace), "-e", "trace=rename,renameat,renameat2")
    assert counted.returncode == 0, counted.stderr
    renames = sum(1 for line in trace.read_text().splitlines() if "rename" in line and "resumed" not in line)
    assert renames >= 1
    for when in range(1, renames + 1):
        assert _advise(old_history, out).returncode == 0
        old_tree = tree(out)
        inject = f"inject=rename,renameat,renameat2:signal=KILL:when={when}"
        killed = _advise(new_history, out, strace, "-f", "-qq", "-o", os.devnull, "-e", inject)
        assert killed.returncode != 0, f"rename {when}: not killed"
        seen = tree(out)
        if seen != old_tree:  # then wholly the new report: every file from the new history's run
            assert set(seen) == set(old_tree)
            for name in ("recommendation.json", "report.md", "report.html"):
                assert b"new.csv" in seen[name] and b"old.csv" not in seen[name], (when, name)
        assert _advise(new_history, out).returncode == 0
        assert sorted(p.name for p in out.parent.iterdir()) == ["out"], f"litter after a kill at rename {when}"


def test_out_is_never_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole of DIR is swapped: the directory a user works in (or one above it) is refused, not replaced."""
    work = tmp_path / "project" / "src"
    work.mkdir(parents=True)
    (work / "mine.py").write_text("keep me\n")
    monkeypatch.chdir(work)
    for out in (Path("."), work, tmp_path / "project"):
        with pytest.raises(BadInput, match="give it one of its own"):
            output.write_files(out, NEW)
    assert (work / "mine.py").read_text() == "keep me\n" and sorted(p.name for p in tmp_path.iterdir()) == ["project"]


def test_the_directory_keeps_its_mode(tmp_path: Path) -> None:
    """A web server publishing the reports can still read a new DIR, and a DIR kept private stays private."""
    fresh = tmp_path / "fresh"
    output.write_files(fresh, OLD)
    assert fresh.stat().st_mode & 0o777 == 0o777 & ~atomic._umask()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    output.write_files(private, NEW)
    assert private.stat().st_mode & 0o777 == 0o700
