"""Atomic file writes: a reader or a crash sees the old file or the new one, never half of one.

Also the names of a run directory's files, in one place (README, "Each run writes a directory").
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

CONFIG_NAME = "config.yaml"  # the fully resolved config
METADATA_NAME = "metadata.json"  # run id, versions, command, every resume
METRICS_NAME = "metrics.jsonl"  # one JSON row per log or test
TENSORBOARD_NAME = "tb"  # TensorBoard event files (a folder)
CHECKPOINT_NAME = "checkpoint.pt"  # the full training state, for resuming
MODEL_NAME = "model.pt"  # the final networks only, for evaluation
BEST_MODEL_NAME = "model_best.pt"  # the networks of the best greedy test so far
CURVE_NAME = "curve.png"  # the learning curve
Q_TABLES_NAME = "q_tables.json"  # matrix games: learned Q_tot next to the true values
Q_TABLES_PLOT_NAME = "q_tables.png"  # ... drawn as heatmaps
ERROR_LOG_NAME = "error.log"  # the traceback of what stopped a run
LOCK_NAME = ".lock"  # held by the process training into the directory


def atomic_write(path: Path, write: Callable[[Path], object], durable: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place.

    ``os.replace`` within one directory is atomic (POSIX and Windows). The temporary file is
    removed if ``write`` fails, and gets the permissions a normal new file would get.

    Args:
        path: the file to create or replace; its parent directories are created.
        write: writes the complete contents to the path it is given.
        durable: ``fsync`` the data and the directory, so the new file survives a power cut
            (checkpoints); without it the rename is still atomic for crashes of this process.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files
        write(tmp)
        if durable:
            with tmp.open("rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
