"""benchmarks/greedy_failures.py: greedy episodes that run to the limit, sorted by how."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

import qmix
from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def gf() -> ModuleType:
    return load_benchmark("greedy_failures")


def test_kind_reads_the_last_window_of_states(gf: ModuleType) -> None:
    assert gf.kind([b"a", b"b", b"c", b"d", b"e", b"e", b"e"], 3) == "stuck"
    assert gf.kind([b"a", b"b", b"c", b"d", b"e", b"e", b"e"], 4) == "cycling"  # d, e
    assert gf.kind([b"x", b"y"] * 5, 10) == "cycling"
    assert gf.kind([b"a", b"b", b"c", b"d"], 10) == "searching"  # fewer steps than the window


def test_counts_add_up_on_a_real_lbf_run(
    gf: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = qmix.make_config(
        "qmix",
        "lbf_8x8_2p_2f_coop",
        [
            "total_env_steps=400",
            "test_interval_env_steps=400",
            "test_episodes=1",
            "checkpoint_interval_env_steps=0",
        ],
    )
    qmix.train(cfg, tmp_path / "run", progress=False)
    monkeypatch.setattr(sys, "argv", ["greedy_failures", str(tmp_path / "run"), "--episodes", "6"])
    gf.main()
    line = capsys.readouterr().out.strip().splitlines()[-1]
    found = re.search(
        r"6 greedy episodes, mean return ([\d.]+); (\d+) ran to the 50-step limit: stuck (\d+), "
        r"cycling (\d+), searching (\d+)",
        line,
    )
    assert found, line
    limited, stuck, cycling, searching = (int(g) for g in found.groups()[1:])
    assert stuck + cycling + searching == limited <= 6
    assert 0.0 <= float(found.group(1)) <= 1.0
