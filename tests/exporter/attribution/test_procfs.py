"""ProcFs reads a real procfs: this test's own process, a child that has exited, and a procfs-shaped directory."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.attribution.procfs import ProcFs


def test_reads_this_process_from_the_real_proc() -> None:
    procs = ProcFs()
    pid = os.getpid()
    assert procs.comm(pid) == Path(f"/proc/{pid}/comm").read_text().strip()
    assert procs.cmdline(pid)[0].endswith(("python", "python3", "pytest")) or "python" in procs.cmdline(pid)[0]
    assert procs.user(pid) == pwd.getpwuid(os.getuid()).pw_name
    assert procs.environ(pid).get("PATH") == os.environ.get("PATH")
    assert procs.cgroup(pid).strip() != ""


def test_an_exited_process_raises_process_lookup_error() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    pid = child.pid
    child.wait()  # reaped: /proc/<pid> is gone
    procs = ProcFs()
    for read in (procs.cgroup, procs.comm, procs.user, procs.cmdline, procs.environ):
        with pytest.raises(ProcessLookupError):
            read(pid)


def _fake_proc(root: Path, pid: int, uid: int) -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "comm").write_text("python3\n")
    (d / "cmdline").write_bytes(b"python3\x00train.py\x00--epochs\x003\x00")
    (d / "status").write_text(f"Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    (d / "environ").write_bytes(b"SLURM_JOB_NAME=bert-large\0SLURM_JOB_ID=4242\0EMPTY=\0")
    (d / "cgroup").write_text("0::/system.slice/slurmstepd.scope/job_4242/step_0/user/task_0\n")


def test_host_proc_and_host_passwd(tmp_path: Path) -> None:
    """In a container: /host/proc for the host's pids, the host's /etc/passwd for their user names."""
    _fake_proc(tmp_path / "proc", 4321, 2001)
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\nalice:x:2001:2001::/home/alice:/bin/bash\n")
    procs = ProcFs(tmp_path / "proc", passwd)
    assert procs.comm(4321) == "python3"
    assert procs.cmdline(4321) == ["python3", "train.py", "--epochs", "3"]
    assert procs.user(4321) == "alice"
    assert procs.environ(4321) == {"SLURM_JOB_NAME": "bert-large", "SLURM_JOB_ID": "4242", "EMPTY": ""}
    _fake_proc(tmp_path / "proc", 4322, 3003)
    assert procs.user(4322) == "3003"  # not in the host's passwd: the uid as text


def test_unreadable_environ_is_empty(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    _fake_proc(tmp_path, 7, 0)
    (tmp_path / "7" / "environ").chmod(0)
    assert ProcFs(tmp_path).environ(7) == {}
