"""The command line, through a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _qmix(*args: str, cwd: Path, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``qmix ARGS`` with the repository (and ``path``, as a user's PYTHONPATH) importable."""
    script = Path(sys.executable).parent / "qmix"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "qmix"]
    paths = [str(Path(__file__).resolve().parents[1]), *([str(path)] if path else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run(
        [*command, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


def test_presets_lists_algorithms_and_tasks(tmp_path: Path) -> None:
    out = _qmix("presets", "--keys", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for word in ("qmix", "vdn", "iql", "two_step", "qtran_matrix", "mixing_embed_dim"):
        assert word in out.stdout


def test_presets_says_where_each_value_comes_from(tmp_path: Path) -> None:
    key = "env_args.key=Foraging-5x5-2p-1f-v3"
    out = _qmix("presets", "qmix", "lbf", key, "lr=0.001", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert lines["optimizer"].endswith("family preset 'lbf' (q: section)")
    assert lines["n_envs"].endswith("family preset 'lbf'")
    assert lines["mixer"].endswith("algorithm preset 'qmix'")
    assert lines["lr"].endswith("overrides") and lines["grad_norm_clip"].endswith("default")
    out = _qmix("presets", "qmix", cwd=tmp_path)
    assert out.returncode == 2 and "needs an algorithm and a task" in out.stderr


def test_a_task_of_a_family_without_a_preset_trains(tmp_path: Path) -> None:
    """The README's `qmix train qmix lbf env_args.key=...` (it was "unknown task 'lbf'")."""
    pytest.importorskip("lbforaging")
    key = "env_args.key=Foraging-5x5-2p-1f-v3"
    args = ["total_env_steps=400", "test_episodes=2", "--run-dir", "run", "--quiet"]
    out = _qmix("train", "qmix", "lbf", key, *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "updates_per_collect: 32" in config  # the lbf family's setting


def test_train_writes_a_run_directory_with_tables(tmp_path: Path) -> None:
    out = _qmix("train", "qmix", "climbing", "total_env_steps=304", "seed=2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "steps 304/304" in out.stdout and "greedy return" in out.stdout  # 38 calls of 8
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert {"config.yaml", "metrics.jsonl", "model.pt", "q_tables.json"} <= {
        p.name for p in run_dir.iterdir()
    }
    tables = json.loads((run_dir / "q_tables.json").read_text())
    assert len(tables["states"]["s"]["q_tot"]) == 3
    assert tables["greedy"]["return"] in {11, -30, 0, 7, 6, 5}


@pytest.mark.parametrize(
    "args, message",
    [
        (["qmix", "two_step", "lrr=0.1"], "unknown config key 'lrr' in overrides (did you mean lr"),
        (["qmix", "two_step", "gamma=2"], "gamma must be in [0, 1]"),
        (["qmx", "two_step"], "unknown algorithm 'qmx'"),
        (["qmix", "my.module:make"], "cannot import module 'my.module'"),
        (["qmix", "penalty", "env_args.k=5"], "penalty k must be <= 0"),
        (["qmix", "climbing", "env_args.size=3"], "rejected env_args"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    args: list[str], message: str, tmp_path: Path
) -> None:
    out = _qmix("train", *args, cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert not (tmp_path / "runs").exists()


def test_check_env_passes_and_fails_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "my_tasks.py").write_text(
        "from tests.test_envs import _BrokenMask, _WrongShape\n"
        "def broken():\n    return _BrokenMask()\n"
    )
    ok = _qmix("check-env", "two_step", cwd=tmp_path)
    assert ok.returncode == 0 and "OK" in ok.stdout
    # the working directory is not on the import path unless the user puts it there
    hidden = _qmix("check-env", "my_tasks:broken", cwd=tmp_path)
    assert hidden.returncode == 2 and "cannot import module 'my_tasks'" in hidden.stderr
    bad = _qmix("check-env", "my_tasks:broken", cwd=tmp_path, path=tmp_path)
    assert bad.returncode == 2
    assert "no available action" in bad.stderr and bad.stderr.strip().count("\n") == 0
    unknown = _qmix("check-env", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown task 'nope'" in unknown.stderr


def test_check_env_checks_the_environment_a_run_of_the_task_trains_on(tmp_path: Path) -> None:
    """The family preset's env_args count (it was the task preset's alone: MPE and RWARE were
    checked with the observations as their state while runs trained on the simulator's)."""
    pytest.importorskip("rware")
    preset = _qmix("check-env", "rware_tiny_2ag", cwd=tmp_path)
    assert preset.returncode == 0 and "state_dim=110" in preset.stdout, preset.stderr
    given = _qmix("check-env", "rware_tiny_2ag", "state=observations", cwd=tmp_path)
    assert given.returncode == 0 and "state_dim=142" in given.stdout, given.stderr
