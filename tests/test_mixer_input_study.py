"""benchmarks/mixer_input.py, issue 17's study: its runs, their order, their records."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from qmix.config import make_config
from tests.conftest import BENCHMARKS, load_benchmark


@pytest.fixture
def study(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports benchmarks/learn.py
    return load_benchmark("mixer_input")


def test_qmix_comes_first_and_every_variant_seed_by_seed(study: ModuleType) -> None:
    todo = study.jobs(["lbf_8x8", "smax_3m"], ["qmix", "qplex"])
    assert len(todo) == 2 * 4 * 5 + 2 * 4 * 3  # 5 seeds of QMIX, 3 of QPLEX, 4 variants
    assert {job.algo for job in todo[:40]} == {"qmix"}
    first = todo[:4]
    assert [job.variant for job in first] == ["state", "obs_concat", "state_obs", "constant"]
    assert {(job.task, job.seed) for job in first} == {("lbf_8x8", 0)}


def test_every_run_of_the_study_is_a_valid_config(study: ModuleType) -> None:
    """Each task's preset with its overrides and each variant: a config, the same budget for
    every variant of a task, and LBF and MPE with the simulator's state."""
    for job in study.jobs(list(study.TASKS), list(study.SEEDS)):
        cfg = make_config(job.algo, study.TASKS[job.task].preset, job.overrides())
        assert cfg.mixer_input == job.variant
        assert cfg.total_env_steps == study.TASKS[job.task].budget
        if cfg.env in ("lbf", "mpe"):
            assert cfg.env_args["state"] == "simulator"


def test_a_finished_seed_is_recorded_beside_the_others(
    study: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(study, "RECORDED", tmp_path)
    rows = [
        {"env_steps": 10, "test_return": 0.5, "test_length": 9.0, "wall_seconds": 1.0},
        {"env_steps": 10, "train_return": 0.1, "wall_seconds": 1.0},
    ]
    for seed in (1, 0):
        study.write_record(study.Job("lbf_8x8", "qmix", "constant", seed), rows)
    saved = json.loads((tmp_path / "lbf_8x8" / "qmix_constant.json").read_text())
    assert list(saved) == ["0", "1"]  # in seed order, the test rows only, the kept fields
    assert saved["0"] == [{"env_steps": 10, "test_return": 0.5, "wall_seconds": 1.0}]
    assert study.recorded(study.Job("lbf_8x8", "qmix", "constant", 0)) == saved
