"""Run directories: one writer each, created atomically, and file errors in one line (issue 13).

- :class:`RunLock` holds an exclusive lock on a run directory for the whole life of the process
  that trains into it; a second process gets a one-line error naming the holder. The kernel
  drops the lock when the holder exits, however it exits (SIGKILL included), so a stale lock
  never blocks a resume.
- :func:`create_run_dir` makes a fresh directory with ``mkdir`` (fails if it exists), so two
  runs started in the same second never share one.
- :func:`remove_stale_temps` deletes the temporary files a kill in the middle of an atomic
  write leaves behind; it is called with the lock held, so no live writer owns them.
- :func:`describe_os_error` turns a failed file operation into one line: "disk full",
  "read-only file system", "is a file", "name too long", "permission denied".
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qmix.config import ConfigError
from qmix.files import CHECKPOINT_NAME, CONFIG_NAME, LOCK_NAME, METRICS_NAME, MODEL_NAME

# what `qmix train` writes into a run directory: any of them means a run lives there
RUN_FILES = (CONFIG_NAME, METRICS_NAME, CHECKPOINT_NAME, MODEL_NAME)


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped a run cleanly: a checkpoint was written first.

    A ``KeyboardInterrupt``, so code that does not handle it stops as it would on Ctrl-C.

    Attributes:
        signum: the signal (``signal.SIGINT`` or ``signal.SIGTERM``).
        run_dir: the run directory, to continue with :func:`resume`.
        env_steps: env steps of the checkpoint.
    """

    def __init__(self, signum: int, run_dir: Path, env_steps: int) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"{name} stopped the run at {env_steps} env steps (checkpoint saved)")
        self.signum, self.run_dir, self.env_steps = signum, run_dir, env_steps


class RunDirBusy(ConfigError):
    """Another process is training into the run directory."""


class RunLock:
    """An exclusive, advisory lock on ``run_dir`` held until :meth:`release` or process exit.

    Uses ``fcntl.flock`` on ``run_dir/.lock``, which also records the holder (pid, host,
    start time, command) for the error message of the next process. On platforms without
    ``fcntl`` (Windows) no lock is taken.

    Raises:
        RunDirBusy: another live process holds the lock.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: documented as unprotected
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise RunDirBusy(
                f"{run_dir} is in use by {self._holder()}: wait for it to finish or stop it "
                "(one process writes to a run directory at a time)"
            ) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:300],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd

    def _holder(self) -> str:
        """Who holds the lock, as recorded in the lock file."""
        try:
            info: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return "another qmix process"
        return (
            f"qmix process {info.get('pid')} on {info.get('host')} (since {info.get('since')}: "
            f"{info.get('command', '')[:80]})"
        )

    def release(self) -> None:
        """Give the lock up (the file stays; its holder entry is stale from then on)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def create_run_dir(base: Path) -> Path:
    """A fresh directory ``base`` (or ``base-1``, ``base-2``, ...), made atomically."""
    base.parent.mkdir(parents=True, exist_ok=True)
    path, k = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            path, k = Path(f"{base}-{k}"), k + 1


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` already holds a run's files."""
    return any((run_dir / name).exists() for name in RUN_FILES)


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes (``.NAME.XXXX.tmp``).

    Call only with the run directory's lock held. Returns what was removed.
    """
    removed = []
    for tmp in Path(run_dir).glob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


_OS_REASONS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOTDIR: "a path component is a file, not a folder",
    errno.EEXIST: "a file is in the way",
    errno.EISDIR: "is a folder",
    errno.EFBIG: "file too large",
    errno.ENOENT: "no such file or folder",
}


def describe_os_error(err: OSError) -> str:
    """One line for a failed file operation: what failed, where, and what to do."""
    reason = _OS_REASONS.get(err.errno or 0, err.strerror or type(err).__name__)
    where = f"{err.filename}: " if err.filename else ""
    advice = {
        errno.ENOSPC: "free some space",
        errno.EDQUOT: "free some space",
        errno.EROFS: "choose a writable runs_dir or --run-dir",
        errno.EACCES: "choose a writable runs_dir or --run-dir",
        errno.EPERM: "choose a writable runs_dir or --run-dir",
        errno.ENAMETOOLONG: "choose a shorter runs_dir, --run-dir or task name",
    }.get(err.errno or 0, "check the path")
    return f"{where}{reason}; {advice} (earlier files were left as they were)"
