"""``ProcSource`` over a real procfs: ``/proc`` on a host, ``/host/proc`` (``--path.procfs``) in a container.

A process can exit between NVML listing it and these reads; every read then raises ``ProcessLookupError`` (the
kernel answers ENOENT for a gone ``/proc/<pid>`` and ESRCH for one that vanished while open), which the
attribution turns into "skip this process".
"""

from __future__ import annotations

import contextlib
import pwd
from pathlib import Path


class ProcFs:
    """Per-pid facts read from files under ``root`` (default ``/proc``)."""

    def __init__(self, root: Path = Path("/proc"), passwd: Path | None = None) -> None:
        self.root = root
        self._passwd = passwd  # the host's /etc/passwd when running in a container (``--path.rootfs``)
        self._users: dict[int, str] | None = None

    def _read(self, pid: int, name: str) -> bytes:
        try:
            return (self.root / str(pid) / name).read_bytes()
        except (FileNotFoundError, ProcessLookupError) as exc:
            raise ProcessLookupError(pid) from exc

    def cgroup(self, pid: int) -> str:
        return self._read(pid, "cgroup").decode(errors="replace")

    def cmdline(self, pid: int) -> list[str]:
        raw = self._read(pid, "cmdline")
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]

    def comm(self, pid: int) -> str:
        return self._read(pid, "comm").decode(errors="replace").rstrip("\n")

    def user(self, pid: int) -> str:
        status = self._read(pid, "status").decode(errors="replace")
        for line in status.splitlines():
            if line.startswith("Uid:"):
                uid = int(line.split()[1])  # real uid
                return self._user_name(uid)
        return ""

    def environ(self, pid: int) -> dict[str, str]:
        try:
            raw = self._read(pid, "environ")
        except PermissionError:  # another user's process, and we are not root: "empty when unreadable"
            return {}
        env = {}
        for entry in raw.split(b"\0"):
            key, sep, value = entry.partition(b"=")
            if sep:
                env[key.decode(errors="replace")] = value.decode(errors="replace")
        return env

    def _user_name(self, uid: int) -> str:
        if self._users is None:
            self._users = _parse_passwd(self._passwd) if self._passwd is not None else {}
        name = self._users.get(uid)
        if name is None:
            name = str(uid)
            if self._passwd is None:
                with contextlib.suppress(KeyError):
                    name = pwd.getpwuid(uid).pw_name
            self._users[uid] = name
        return name


def _parse_passwd(path: Path) -> dict[int, str]:
    users: dict[int, str] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return users
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            users.setdefault(int(fields[2]), fields[0])
    return users
