"""Write files so that a failed run leaves the previous version intact: write a temporary name, then rename.

Used for history files, the advisor's ``--out`` directory, the delivery ledger and anything else a crash must not
leave half-written. The temporary file sits in the target's directory so that ``os.replace`` is atomic.
:func:`write_tree` does the same for a whole directory (the advisor's ``--out``): one switch, old or new.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``, on error it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


# --- a whole directory, switched in one step -------------------------------------------------------------------

_RENAME_EXCHANGE = 2  # linux/fs.h: swap two paths atomically (renameat2, Linux 3.15+; ext4, xfs, btrfs, tmpfs)
_AT_FDCWD = -100
_STAGING = ".new-"  # the sibling a run builds in: .<name>.new-<random>
_RETIRED = ".old-"  # where the previous version waits to be removed where RENAME_EXCHANGE is missing


def write_tree(target: Path, files: Mapping[str, bytes], replaced: Collection[str] = ()) -> None:
    """Replace the directory ``target`` with ``files`` (relative path -> content) in one atomic switch.

    The new tree is built in a sibling directory and swapped with ``target`` by ``renameat2(RENAME_EXCHANGE)``, so
    a reader of ``target`` (or a crash at any instant) sees the old tree or the new one, never a mix. Top-level
    entries of the old tree that neither ``files`` nor ``replaced`` name (the demo's history, a user's notes) are
    carried into the new tree as hard links. Siblings left by a run that died are removed first; a live run's
    sibling is locked (flock) and left alone. ``target`` may be a symlink: the directory it points to is switched.
    """
    target = Path(os.path.realpath(target))
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target}: exists and is not a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{_STAGING}", dir=target.parent))
    lock = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # mkdtemp's 0700 would hide the report from a web server: keep DIR's mode, else what mkdir would give
        staging.chmod(stat.S_IMODE(target.stat().st_mode) if target.is_dir() else 0o777 & ~_umask())
        for name, data in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if target.is_dir():
            owned = {Path(n).parts[0] for n in files} | set(replaced)
            _carry(target, staging, owned)
        _switch(staging, target)
    except BaseException:
        _remove(staging)
        raise
    finally:
        os.close(lock)
    _remove(staging)  # the previous tree, swapped out


def _umask() -> int:
    """The process's umask without setting it (os.umask would change it for every thread for an instant)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def remove_leftovers(target: Path) -> None:
    """Remove what runs that died left beside ``target``; put the old tree back if one died mid-switch."""
    prefix = f".{target.name}"
    try:
        siblings = sorted(p for p in target.parent.iterdir() if p.name.startswith(prefix + "."))
    except FileNotFoundError:
        return
    for sibling in siblings:
        rest = sibling.name[len(prefix) :]
        if not rest.startswith((_STAGING, _RETIRED)) or sibling.is_symlink() or not sibling.is_dir():
            continue
        if rest.startswith(_RETIRED) and not target.exists():
            with contextlib.suppress(FileNotFoundError):
                os.rename(sibling, target)  # died between the two renames of the fallback switch
            continue
        if _unlocked(sibling):
            _remove(sibling)


def _unlocked(directory: Path) -> bool:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False  # a run in progress is building it
    finally:
        os.close(fd)


def _carry(old: Path, new: Path, owned: set[str]) -> None:
    for entry in old.iterdir():
        if entry.name in owned:
            continue
        destination = new / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, destination, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(entry), str(destination))


def _link_or_copy(source: str, destination: str) -> None:
    if os.path.islink(source):
        os.symlink(os.readlink(source), destination)
        return
    try:
        os.link(source, destination)
    except OSError:  # another filesystem below, or hard links refused
        shutil.copy2(source, destination)


def _switch(staging: Path, target: Path) -> None:
    """``staging`` becomes ``target``; the old ``target``, if any, ends up at ``staging``."""
    if not target.exists():
        os.rename(staging, target)  # an empty directory made meanwhile is replaced, a non-empty one refuses
        return
    if _exchange(staging, target):
        return
    # no RENAME_EXCHANGE on this filesystem: two renames; a crash between them is undone by remove_leftovers
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}{_RETIRED}", dir=target.parent))
    os.rename(target, retired)
    os.rename(staging, target)
    os.rename(retired, staging)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step; False where the kernel or the filesystem cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno_ = ctypes.get_errno()
    if errno_ in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(errno_, os.strerror(errno_), str(b))


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
