"""benchmarks/learn.py --extend: a record grows seed by seed, and only with its own settings."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from qmix.config import make_config
from qmix.trainer import train

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SHORT = "total_env_steps=200"  # two_step: a few seconds per seed


@pytest.fixture
def learn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/learn.py, writing its records under ``tmp_path/recorded``."""
    spec = importlib.util.spec_from_file_location("learn_under_test", BENCHMARKS / "learn.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "recorded").mkdir()
    monkeypatch.setattr(module, "RECORDED", tmp_path / "recorded")
    return module


def run_learn(learn: ModuleType, monkeypatch: pytest.MonkeyPatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", ["learn.py", *argv])
    learn.main()


def write_record(root: Path, name: str, config: dict, seeds: dict[int, list[dict]]) -> Path:
    """A record as learn.py writes it: NAME.json (rows per seed) and NAME.md (its config)."""
    text = "\n".join(
        [
            "Resolved configuration (seed 0 shown):",
            "",
            "```yaml",
            yaml.safe_dump(config, sort_keys=False).strip(),
            "```",
        ]
    )
    (root / f"{name}.md").write_text(text)
    path = root / f"{name}.json"
    path.write_text(json.dumps({str(seed): rows for seed, rows in seeds.items()}))
    return path


def rows(final: float) -> list[dict]:
    return [
        {"env_steps": 100, "test_return": 0.0, "wall_seconds": 5.0},
        {"env_steps": 200, "test_return": final, "wall_seconds": 9.0},
    ]


def test_recorded_seeds_keeps_the_other_seeds_of_the_same_settings(
    learn: ModuleType, tmp_path: Path
) -> None:
    config = make_config("qmix", "two_step", [SHORT]).to_dict()
    path = write_record(tmp_path, "r", config, {0: rows(1.0), 1: rows(2.0), 2: rows(3.0)})
    kept = learn.recorded_seeds(path, {**config, "seed": 7}, exclude=[1], with_eval=False)
    assert [r["seed"] for r in kept] == [0, 2]
    assert [r["rows"][-1]["test_return"] for r in kept] == [1.0, 3.0]
    assert [r["wall"] for r in kept] == [9.0, 9.0]
    assert all(r["run_dir"] is None for r in kept)


@pytest.mark.parametrize("override", ["lr=0.01", "total_env_steps=300", "hypernet_layers=2"])
def test_recorded_seeds_refuses_a_record_of_other_settings(
    learn: ModuleType, tmp_path: Path, override: str
) -> None:
    config = make_config("qmix", "two_step", [SHORT]).to_dict()
    path = write_record(tmp_path, "r", config, {0: rows(1.0)})
    other = make_config("qmix", "two_step", [SHORT, override]).to_dict()
    with pytest.raises(SystemExit, match=f"other settings \\({override.split('=')[0]}"):
        learn.recorded_seeds(path, other, exclude=[1], with_eval=False)


def test_recorded_seeds_needs_the_record_and_its_scores(learn: ModuleType, tmp_path: Path) -> None:
    config = make_config("qmix", "two_step", [SHORT]).to_dict()
    with pytest.raises(SystemExit, match="no record missing"):
        learn.recorded_seeds(tmp_path / "missing.json", config, exclude=[], with_eval=False)
    path = write_record(tmp_path, "r", config, {0: rows(1.0)})
    with pytest.raises(SystemExit, match=r"r_eval\.json has no scores for seed 0"):
        learn.recorded_seeds(path, config, exclude=[1], with_eval=True)


def test_extend_regrows_the_record_after_a_seeds_run_dir_is_lost(
    learn: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, recorded = tmp_path / "runs", tmp_path / "recorded"
    options = ["--out", str(out), "--name", "t", "--threshold", "7"]
    common = ["qmix", "two_step", SHORT, *options]
    run_learn(learn, monkeypatch, *common, "--seeds", "0", "1", "--jobs", "2")
    whole = json.loads((recorded / "t.json").read_text())
    assert sorted(whole) == ["0", "1"]

    shutil.rmtree(out / "qmix_two_step_seed0")  # a new machine: seed 0's run dir is gone
    run_learn(learn, monkeypatch, *common, "--seeds", "1", "--jobs", "1", "--resume", "--extend")
    assert json.loads((recorded / "t.json").read_text()) == whole
    md = (recorded / "t.md").read_text()
    assert "Seed 0 is read from this record's earlier version (--extend)" in md
    assert "| 0 | " in md and "| 1 | " in md
    assert "--seeds 1 --jobs 1 --threshold 7.0 --name t --extend" in md
    assert "Resolved configuration (seed 1 shown)" in md and "seed: 1" in md

    # Other settings are refused before anything trains, and the record is left as it was.
    with pytest.raises(SystemExit, match="other settings \\(gamma\\)"):
        run_learn(learn, monkeypatch, "qmix", "two_step", SHORT, "gamma=0.5", *options, "--extend")
    assert not (out / "qmix_two_step_seed2").exists()
    assert (recorded / "t.md").read_text() == md


def test_a_run_checkpointed_before_its_first_metrics_row_is_resumed(
    learn: ModuleType, tmp_path: Path
) -> None:
    """A run stopped after its first checkpoint but before its first metrics row (an LBF run
    checkpoints at 3,600 env steps, tests first at 10,000) is resumed, not a crash reading the
    metrics it has not written yet (the mixer_input study lost a run to this)."""
    run_dir = tmp_path / "run"
    cfg = make_config("qmix", "two_step", {"total_env_steps": 200})
    train(cfg, run_dir=run_dir, progress=False)
    (run_dir / "metrics.jsonl").unlink()  # as it was at the first checkpoint
    command = learn.seed_command("qmix", "two_step", 0, [SHORT], run_dir, True)
    assert command[-3:] == ["--resume", str(run_dir), "--quiet"]
    assert not learn.finished(run_dir)
