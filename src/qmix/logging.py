"""Run output: metrics as JSON lines, and a progress line on the console."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO


class MetricsWriter:
    """Appends one JSON object per line to ``metrics.jsonl`` and keeps them in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        """Record one row (flushed at once, so a crash loses nothing written)."""
        self.rows.append(row)
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Progress line: env steps, episodes, returns, steps/s and ETA.

    On a terminal the line is rewritten in place; otherwise a plain line is printed each time.
    """

    def __init__(self, label: str, total_env_steps: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total_env_steps
        self.stream = stream if stream is not None else sys.stdout
        self.start = time.perf_counter()
        self.interactive = self.stream.isatty()

    def update(self, env_steps: int, episodes: int, fields: dict[str, float | None]) -> None:
        """Show the current figures (``None`` values are left out)."""
        elapsed = time.perf_counter() - self.start
        rate = env_steps / elapsed if elapsed > 0 else 0.0
        eta = (self.total - env_steps) / rate if rate > 0 else 0.0
        parts = [
            f"[{self.label}] steps {env_steps}/{self.total} ({100 * env_steps / self.total:.0f}%)",
            f"ep {episodes}",
            *(f"{key} {value:.3g}" for key, value in fields.items() if value is not None),
            f"{rate:.0f} steps/s",
            f"ETA {_clock(eta)}",
        ]
        line = " | ".join(parts)
        if self.interactive:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the in-place line."""
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
