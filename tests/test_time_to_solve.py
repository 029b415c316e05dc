"""benchmarks/time_to_solve.py: when a target is reached, and from when it is sustained."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def tts() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))  # it imports benchmarks/learn.py
    try:
        spec = importlib.util.spec_from_file_location(
            "time_to_solve", BENCHMARKS / "time_to_solve.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["time_to_solve"] = module  # its dataclasses look themselves up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def _rows(scores: list[float], seconds_per_test: float = 10.0) -> list[dict[str, Any]]:
    """One test row per score, 1,000 env steps apart, with training rows between."""
    rows: list[dict[str, Any]] = []
    for i, score in enumerate(scores):
        step = 1000 * (i + 1)
        rows.append(
            {"env_steps": step, "test_win_rate": score, "wall_seconds": seconds_per_test * (i + 1)}
        )
        rows.append({"env_steps": step, "loss": 0.1, "wall_seconds": seconds_per_test * (i + 1)})
    return rows


def test_sustained_from_is_the_first_test_after_the_last_failing_window(tts: ModuleType) -> None:
    # seed means: 0.5 x 5, then 1.0 x 20 -> windows of 10 fail until they hold no 0.5 below 0.9:
    # a window with one 0.5 averages 0.95 (passes), with two 0.9 (passes), with three 0.85
    low, high = [0.5] * 5, [1.0] * 20
    runs = [_rows(low + high), _rows(low + high)]
    steps, wall = tts.sustained_from(runs, "test_win_rate", 0.9, window=10)
    # windows start at tests 0..15; those starting at 0..2 hold >= 3 lows (fail); start 3 holds 2
    assert steps == 4000 and wall == 40.0


def test_a_dip_at_the_end_moves_the_start_past_it(tts: ModuleType) -> None:
    scores = [1.0] * 20 + [0.0] * 2
    start = tts.sustained_from([_rows(scores)], "test_win_rate", 0.9, window=10)
    assert start is None  # the last window (tests 12..21) averages 0.8


def test_never_or_too_few_tests(tts: ModuleType) -> None:
    assert tts.sustained_from([_rows([0.2] * 30)], "test_win_rate", 0.9) is None
    assert tts.sustained_from([_rows([1.0] * 5)], "test_win_rate", 0.9) is None
    assert tts.sustained_from([_rows([1.0] * 12)], "test_win_rate", 0.9) == (1000, 10.0)


def test_eta_error_compares_the_early_rate_with_the_time_the_run_took(tts: ModuleType) -> None:
    steady = [{"env_steps": s, "wall_seconds": float(s)} for s in range(10, 101, 10)]
    assert tts.eta_error(steady) == pytest.approx(0.0)
    # twice as slow per step after step 50: at step 10 the ETA says 90 s, the run takes 140 more
    slowing = [
        {"env_steps": s, "wall_seconds": s if s <= 50 else 50.0 + 2 * (s - 50)}
        for s in range(10, 101, 10)
    ]
    assert tts.eta_error(slowing) == pytest.approx(90 / 140 - 1)


def test_eta_error_uses_the_eta_the_run_showed(tts: ModuleType) -> None:
    """Rows that carry ``eta_seconds`` (the progress line's own estimate) are judged by it."""
    slowing = [
        {
            "env_steps": s,
            "wall_seconds": s if s <= 50 else 50.0 + 2 * (s - 50),
            "eta_seconds": 126.0,
        }
        for s in range(10, 101, 10)
    ]
    slowing[-1]["eta_seconds"] = 0.0
    assert tts.eta_error(slowing) == pytest.approx(126 / 140 - 1)
