"""benchmarks/mixer_input.py, issue 17's study: its runs, their order, their records."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

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
    assert not (tmp_path / "lbf_8x8" / "training").exists()  # no row with a loss: none kept


def training_run(steps: int = 100) -> list[dict[str, float]]:
    """A run's metrics rows, every 10 steps a training row and every 50 a test row: the loss
    steady at 0.01 but 100x at step 60, where the gain jumps and the training return drops."""
    rows: list[dict[str, float]] = []
    for t in range(10, steps + 1, 10):
        loss, gain, ret = (1.0, 2.0, 0.2) if t == 60 else (0.01, 0.2 if t < 60 else 0.6, 1.0)
        ret = 0.2 if t > 60 else ret
        rows.append({"env_steps": t, "train_return": ret, "loss": loss, "mixer_gain": gain})
        rows[-1].update(epsilon=0.05, wall_seconds=float(t))
        if t % 50 == 0:
            rows.append({"env_steps": t, "test_return": t / 100, "wall_seconds": float(t)})
    return rows


def test_a_finished_seed_keeps_its_training_rows_and_health_finds_a_collapse(
    study: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(study, "RECORDED", tmp_path)
    monkeypatch.setattr(study, "SETTLED_FRACTION", 0.0)
    job = study.Job("smax_2s3z", "ow_qmix", "obs_concat", 1)
    study.write_record(job, training_run())
    saved = json.loads(
        (tmp_path / "smax_2s3z" / "training" / "ow_qmix_obs_concat.json").read_text()
    )
    assert list(saved) == ["1"] and len(saved["1"]) == 10  # the training rows only ...
    assert set(saved["1"][0]) == {"env_steps", "train_return", "loss", "mixer_gain"}  # ... kept
    rise = study.largest_rise(saved["1"], "loss", 100)
    assert rise is not None and rise[0] == 5 and rise[1] == pytest.approx(100.0)  # step 60
    assert study.largest_rise(saved["1"], "mixer_gain", 100) == (5, pytest.approx(10.0))
    assert study.around(saved["1"], 5, "train_return") == pytest.approx((1.0, 0.2))
    assert study.largest_rise(saved["1"], "central_loss", 100) is None  # not logged: none
    table = study.health(["smax_2s3z"], ["ow_qmix"])
    row = "| smax_2s3z | ow_qmix | `obs_concat` | 1 | 100.0 | 60 | – | – | 10.0 | 60 | 1.00, 0.20 |"
    assert row in table
    assert table.count("| smax_2s3z |") == 1  # only the run with training rows


def test_health_skips_the_settling_start_of_a_run(study: ModuleType) -> None:
    rows = [r for r in training_run() if "loss" in r]
    rows[1]["loss"] = 50.0  # the first rows' loss settles from its initial scale ...
    assert study.largest_rise(rows, "loss", 100)[0] == 1  # counted from 20% = 20 steps on
    assert study.largest_rise(rows, "loss", 250)[0] == 5  # not counted before 50 steps
    assert study.largest_rise(rows, "loss", 1000) is None  # no row past 20% = 200 steps


def test_input_stats_count_active_and_constant_features(study: ModuleType) -> None:
    x = np.array([[3.0, 0.0, 1.0, 0.0, 1.0], [4.0, 0.0, 1.0, -2.0, 2.0], [0.0, 0.0, 1.0, 0.0, 3.0]])
    st = study.input_stats(x)
    assert st["width"] == 5
    assert st["row_norm"] == pytest.approx(math.sqrt(11))  # rows' norms 3.32, 5, 3.16
    assert st["active"] == 3  # non-zero features a row: 3, 4, 2 (zero ones: 2, 1, 3)
    assert st["constant"] == pytest.approx(0.4)  # features 1 and 2 never change
    assert st["largest"] == 4


def test_random_play_gives_the_tasks_state_and_joint_observations(study: ModuleType) -> None:
    """LBF 8x8 with the simulator's state: 12 numbers (2 players, 2 foods: x, y, level), and two
    agents' observations side by side; the same rows every time (seeded)."""
    states, joint = study.random_play("lbf_8x8", steps=30, envs=2)
    assert states.shape == (60, 12) and joint.shape == (60, 24)
    again, _ = study.random_play("lbf_8x8", steps=30, envs=2)
    np.testing.assert_array_equal(states, again)
    assert len(np.unique(states, axis=0)) > 2  # the players moved
    assert "| lbf_8x8 | `obs_concat` | 24 |" in study.inputs(["lbf_8x8"])


def test_a_recorded_seed_gets_the_training_rows_of_its_own_run_folder_only(
    study: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(study, "RECORDED", tmp_path / "recorded")
    out = tmp_path / "runs"
    job = study.Job("smax_2s3z", "ow_qmix", "state", 0)
    rows = training_run()
    study.add_seed(job.record(), 0, study.curve_rows(rows))  # recorded without training rows
    run_dir = job.run_dir(out)
    assert run_dir == out / "smax_2s3z" / "ow_qmix_state" / "ow_qmix_smax_seed0"
    run_dir.mkdir(parents=True)
    other = [dict(r, test_return=0.0) if "test_return" in r else r for r in rows]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in other))
    assert not study.add_training(job, out)  # a different run in the folder: left alone
    assert not job.training_record().exists()
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert study.run(job, out).endswith(
        "recorded already (its training rows added from its run folder)"
    )
    assert len(study.seeds_of(job.training_record())["0"]) == 10
    assert study.run(job, out).endswith("recorded already")  # once only


def test_a_runs_final_score_and_auc(study: ModuleType) -> None:
    rows = [{"env_steps": 10 * i, "test_return": i / 10} for i in range(11)]  # 0 .. 1, linear
    final, auc = study.run_scores(rows, "test_return")
    assert final == pytest.approx((0.9 + 1.0) / 2)  # the evaluations in the last 10%
    assert auc == pytest.approx(0.5)  # the mean of a straight line from 0 to 1


def test_report_writes_tables_figures_and_keeps_the_page_around_its_markers(
    study: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(study, "RECORDED", tmp_path / "recorded")
    monkeypatch.setattr(study, "IMAGES", tmp_path / "images")
    monkeypatch.setattr(study, "DOC", tmp_path / "page.md")
    page = f"# Title\n\nprose before\n\n{study.BEGIN}\nold tables\n{study.END}\n\nprose after\n"
    study.DOC.write_text(page)
    level = {"state": 0.6, "obs_concat": 0.8, "state_obs": 0.6, "constant": 0.2}
    for variant, top in level.items():
        for seed in range(3):
            rows = [
                {"env_steps": 10 * i, "test_return": top * i / 10 + 0.01 * seed} for i in range(11)
            ]
            study.write_record(study.Job("lbf_8x8", "qmix", variant, seed), rows)
    study.report(["lbf_8x8", "smax_3m"], ["qmix"])
    text = study.DOC.read_text()
    assert text.startswith("# Title\n\nprose before\n\n") and text.endswith("\n\nprose after\n")
    assert "old tables" not in text and "12 of the study's 40 runs" in text
    table = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| qmix")}
    assert list(table) == ["`state`", "`obs_concat`", "`state_obs`", "`constant`"]
    assert "| 3 | 0.580 [" in table["`state`"]  # final: (0.54 + 0.6) / 2 + the seeds' mean 0.01
    # P(final > state's) and P(AUC > state's): the last two columns
    assert table["`obs_concat`"].endswith("| 1.000 [1.000, 1.000] | 1.000 [1.000, 1.000] |")
    assert table["`constant`"].endswith("| 0.000 [0.000, 0.000] | 0.000 [0.000, 0.000] |")
    assert table["`state_obs`"].endswith("| 0.500 [0.056, 0.944] | 0.500 [0.056, 0.944] |")
    assert table["`state`"].endswith("| – | – |")
    assert "### smax_3m\n\nNo run recorded yet." in text
    for name in ("lbf_8x8", "iqm", "poi"):
        assert (study.IMAGES / f"mixer_input_{name}.png").stat().st_size > 1000
    study.DOC.write_text("# a page without its markers\n")
    with pytest.raises(SystemExit, match="lost its report markers"):
        study.report(["lbf_8x8"], ["qmix"])
    assert study.DOC.read_text() == "# a page without its markers\n"  # nothing destroyed


def test_the_page_reports_the_whole_study_whatever_part_was_chosen(
    study: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: ``run --tasks smax_3m --algos ow_qmix`` ended with a report of that part
    alone, which would have dropped every other task's tables from the page."""
    monkeypatch.setattr(study, "RECORDED", tmp_path / "recorded")
    monkeypatch.setattr(study, "IMAGES", tmp_path / "images")
    monkeypatch.setattr(study, "DOC", tmp_path / "page.md")
    study.DOC.write_text(f"{study.BEGIN}\n{study.END}\n")
    rows = [{"env_steps": 10 * i, "test_return": i / 10} for i in range(11)]
    for task in ("lbf_8x8", "mpe_spread"):
        study.write_record(study.Job(task, "qmix", "state", 0), rows)
    study.main(["report", "--tasks", "lbf_8x8", "--algos", "qmix"])
    text = study.DOC.read_text()
    total = len(study.jobs(list(study.TASKS), list(study.SEEDS)))
    assert f"from 2 of the study's {total} runs" in text
    for task in study.TASKS:
        assert f"### {task}\n" in text
    assert "### mpe_spread\n\n| algorithm" in text  # a task outside --tasks keeps its table


@pytest.mark.parametrize("task", ["lbf_8x8", "mpe_spread", "smax_3m", "lbf_2s_8x8", "smax_2s3z"])
def test_every_variant_trains_on_every_task_of_the_study(study: ModuleType, task: str) -> None:
    """The study's own config of each variant, its learner trained on two real episodes of the
    task: the mixer reads the input of its variant, of the width the task gives it, and the
    loss is finite. (One environment per task: a SMAX build compiles for ~25 s.)"""
    from qmix.envs.registry import make_vector_env
    from qmix.learners import build_learner
    from qmix.runner import EpisodeRunner

    torch.manual_seed(0)
    configs = {
        v: make_config("qmix", study.TASKS[task].preset, study.Job(task, "qmix", v, 0).overrides())
        for v in study.VARIANTS
    }
    envs = make_vector_env(configs["state"].env, configs["state"].env_args, 2)
    try:
        info = envs.env_info()
        widths = {}
        batch = None
        for variant, cfg in configs.items():
            learner = build_learner(cfg, info)
            if batch is None:
                batch, _ = EpisodeRunner(envs, learner.controller).run([0, 1], epsilon=1.0)
            loss = learner.train(batch)["loss"]
            assert math.isfinite(loss), (variant, loss)
            widths[variant] = learner.mixer.input_dim  # type: ignore[attr-defined]
    finally:
        envs.close()
    state, obs = info.state_dim, info.n_agents * info.obs_dim
    assert widths == {"state": state, "obs_concat": obs, "state_obs": state + obs, "constant": 1}


def test_status_counts_runs_and_prices_what_is_left(
    study: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(study, "RECORDED", tmp_path)
    monkeypatch.setattr(study, "ROOT", tmp_path.parent)
    rows = [{"env_steps": 10, "test_return": 0.5, "wall_seconds": 600.0}]  # a 10-minute run
    study.write_record(study.Job("lbf_8x8", "qmix", "state", 0), rows)
    text = study.status(["lbf_8x8", "smax_3m"], ["qmix", "qplex"])
    assert "| lbf_8x8 | qmix | 1 of 20 | 10.0 (median of recorded) | 3.2 |" in text  # 19 x 10'
    # QPLEX's factor on lbf_8x8 (4) times QMIX's median there; on smax_3m, with no QMIX run
    # recorded, times the plan's minutes for QMIX (9) with its factor there (1.6)
    assert "| lbf_8x8 | qplex | 0 of 12 | 40.0 (plan x QMIX's median) | 8.0 |" in text
    assert "| smax_3m | qplex | 0 of 12 | 14.4 (plan) | 2.9 |" in text
    assert "| smax_3m | qmix | 0 of 20 | 9.0 (plan) | 3.0 |" in text
    assert "1 runs recorded" in text and "63 left" in text
    # QMIX's median counts whether or not QMIX is among the algorithms asked about
    assert "| lbf_8x8 | qplex | 0 of 12 | 40.0 (plan x QMIX's median) |" in study.status(
        ["lbf_8x8"], ["qplex"]
    )


def test_a_failed_run_is_a_line_and_the_others_go_on(
    study: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> dict:
        raise RuntimeError("seed 0 failed:\nTraceback ...\nqmix: error: the loss diverged")

    monkeypatch.setattr(study, "RECORDED", tmp_path)
    monkeypatch.setattr(study, "run_seed", broken)
    line, ok = study.attempt(study.Job("lbf_8x8", "qmix", "state", 0), tmp_path)
    assert not ok
    assert line.endswith("FAILED: seed 0 failed: ... qmix: error: the loss diverged")


def test_across_tasks_pools_bounded_scores_and_averages_probabilities(study: ModuleType) -> None:
    level = {"state": 0.5, "obs_concat": 0.8, "state_obs": 0.5, "constant": 0.1}

    def seeds(top: float, n: int = 5) -> dict[str, list[dict[str, float]]]:
        return {
            str(k): [{"env_steps": 10 * i, "test_return": top * i / 10} for i in range(11)]
            for k in range(n)
        }

    records = {("lbf_8x8", "qmix", v): seeds(top) for v, top in level.items()}
    lines, _ = study.aggregate_table(records, ["lbf_8x8", "mpe_spread"], ["qmix"])
    assert lines == []  # one task done: nothing across tasks yet
    # MPE's returns are not in [0, 1]: in the probabilities only (obs_concat worse there)
    records |= {("mpe_spread", "qmix", v): seeds(-100 * top) for v, top in level.items()}
    records[("lbf_2s_8x8", "qmix", "state")] = seeds(0.5, n=3)  # unfinished: left out
    lines, numbers = study.aggregate_table(records, list(study.TASKS), ["qmix"])
    assert lines[0] == (
        "qmix: IQM over lbf_8x8 (scores in [0, 1]); probabilities averaged over lbf_8x8, "
        "mpe_spread."
    )
    table = {line.split(" | ")[1]: line for line in lines if line.startswith("| qmix")}
    assert table["`obs_concat`"].startswith("| qmix | `obs_concat` | 0.760 [0.760, 0.760] |")
    # P(final > state's): 1 on LBF, 0 on MPE -> 0.5 averaged; likewise the AUC
    assert table["`obs_concat`"].endswith("| 0.500 [0.500, 0.500] | 0.500 [0.500, 0.500] |")
    assert {n.task for n in numbers} == {"across tasks"}
