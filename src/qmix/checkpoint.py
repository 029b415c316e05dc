"""Checkpoints: atomic writes of the full training state, and loads that never unpickle code.

A checkpoint is a plain nested mapping of tensors, numbers, strings, lists and dicts, saved with
``torch.save`` and read back with ``torch.load(weights_only=True)``, which refuses anything
else -- so opening a checkpoint from someone else cannot run their code.

Writes go to a temporary file in the same directory, are flushed to disk, and then renamed over
the old checkpoint (``os.replace`` is atomic on POSIX and Windows): a crash at any moment
leaves either the previous checkpoint or the new one, never a half-written file.

Every checkpoint carries a SHA-256 digest of its contents (every tensor's bytes, dtype and
shape, every number and string), checked on load: flipped bytes inside tensor data, which
the zip container does not notice, are refused (issue 13).
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from qmix.files import BEST_MODEL_NAME, CHECKPOINT_NAME, MODEL_NAME, atomic_write

__all__ = [  # the file names stay importable from here, where they were first defined
    "BEST_MODEL_NAME",
    "CHECKPOINT_NAME",
    "MODEL_NAME",
    "CheckpointError",
    "content_digest",
    "load_checkpoint",
    "save_checkpoint",
]
FORMAT_VERSION = 2  # 2: a content digest, and the run's id and config in every file


class CheckpointError(Exception):
    """A checkpoint is missing, truncated, corrupted or of another format."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically and durably (temporary file, fsync, rename).

    Args:
        path: the checkpoint file.
        state: tensors, numbers, strings, ``None`` and lists / dicts of them.

    Returns:
        ``path``.
    """
    body = {"format": FORMAT_VERSION, **state}
    body["digest"] = content_digest(body)

    def write(tmp: Path) -> None:
        try:
            torch.save(body, tmp)
        except RuntimeError as err:
            # torch's zip writer reports a full disk as "unexpected pos" or "iostream error"
            if _free_bytes(tmp.parent) < 64 * 2**10:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from err
            raise

    return atomic_write(path, write, durable=True)


def _free_bytes(folder: Path) -> int:
    """Bytes free on the file system of ``folder`` (a large number where unknown)."""
    try:
        stats = os.statvfs(folder)
    except (AttributeError, OSError):
        return 2**62
    return stats.f_bavail * stats.f_frsize


def content_digest(state: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's contents (its ``digest`` entry left out), in a fixed order.

    Tensors count with their dtype, shape and raw bytes (hashed in place, no copy), plain
    values with their type and ``repr`` (exact for floats); mapping keys are visited sorted.
    """
    digest = hashlib.sha256()

    def visit(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
        elif isinstance(value, dict):
            keys = sorted((k for k in value if value is not state or k != "digest"), key=repr)
            digest.update(f"D{len(keys)}".encode())
            for key in keys:
                digest.update(repr(key).encode())
                visit(value[key])
        elif isinstance(value, (list, tuple)):
            digest.update(f"L{len(value)}".encode())
            for item in value:
                visit(item)
        else:
            digest.update(f"{type(value).__name__}:{value!r};".encode())

    visit(state)
    return digest.hexdigest()


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU.

    Raises:
        CheckpointError: the file is missing, not a checkpoint, truncated or corrupted, or
            holds objects other than tensors and plain data (never unpickled). The message is
            one line that says what to do; the file is left as it is.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as err:
        if "Weights only load failed" in str(err) and "GLOBAL" in str(err):
            raise CheckpointError(
                f"{path} holds Python objects, not only tensors and plain data; qmix does not "
                "unpickle them (they could run code): it was not loaded"
            ) from err
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {path} is corrupted or truncated ({reason[:160]}); it was left "
            "untouched: restore a copy or start a new run"
        ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is not a qmix checkpoint of format {FORMAT_VERSION} (found {found!r}); "
            "it was left untouched"
        )
    if state.get("digest") != content_digest(state):
        raise CheckpointError(
            f"checkpoint {path} is damaged: its contents do not match its checksum (flipped "
            "bytes?); it was left untouched: restore a copy or start a new run"
        )
    return state
