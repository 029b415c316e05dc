"""Multi-run comparison: statistics, grid alignment, run discovery, summary table, plot."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from qmix.compare import (
    RunRecord,
    align_curves,
    bootstrap_mean_ci,
    curve_stats,
    find_run_dirs,
    iqm,
    load_record,
    load_runs,
    metric_curve,
    plot_comparison,
    summary_rows,
    summary_table,
)

ROOT = Path(__file__).resolve().parents[1]
LBF_RECORD = ROOT / "benchmarks" / "recorded" / "qmix_lbf_8x8_2p_2f_coop.json"


def write_run(
    root: Path,
    algo: str,
    task: str,
    seed: int,
    evals: Sequence[tuple[int, float]],
    metric: str = "test_return",
    name: str | None = None,
    **config: object,
) -> Path:
    """A fake run directory: config.yaml plus train and test rows like the trainer writes."""
    run_dir = root / (name or f"{algo}_{task}_seed{seed}")
    run_dir.mkdir(parents=True)
    cfg = {"algo": algo, "task": task, "env": task, "seed": seed, **config}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    rows: list[dict[str, object]] = []
    for step, value in evals:
        rows.append({"env_steps": step - 1, "episodes": step // 10, "train_return": -99.0})
        rows.append({"env_steps": step, "episodes": step // 10, metric: value, "test_length": 5})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


def write_record(
    root: Path,
    name: str,
    algo: str,
    task: str,
    seeds: Mapping[int, Sequence[tuple[int, float]]],
    **config: object,
) -> Path:
    """A fake record as benchmarks/learn.py writes it: NAME.json (rows per seed) and NAME.md."""
    root.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, object]]] = {}
    for seed, evals in seeds.items():
        rows[str(seed)] = []
        for step, value in evals:  # a test and a training row at the same step, as learn.py has
            rows[str(seed)].append(
                {"env_steps": step, "episodes": step // 10, "test_return": value}
            )
            rows[str(seed)].append({"env_steps": step, "updates": step, "train_return": -9.0})
    cfg = {"algo": algo, "task": task, "env": task, "seed": 0, **config}
    lines = [
        f"# {algo} on {task}",
        "",
        "Command (from the repository root):",
        "",
        "```bash",
        f".venv/bin/python benchmarks/learn.py {algo} {task} --seeds 0 1 --jobs 2",
        "```",
        "",
        "| seed | final test_return | best | env steps | wall time (s) |",
        "|---|---|---|---|---|",
        "| 0 | 1.000 | 1.000 | 30 | 1 |",
        "",
        f"![curves]({name}.png)",
        "",
        "Resolved configuration (seed 0 shown):",
        "",
        "```yaml",
        yaml.safe_dump(cfg, sort_keys=False).strip(),
        "```",
        "",
    ]
    (root / f"{name}.md").write_text("\n".join(lines))
    path = root / f"{name}.json"
    path.write_text(json.dumps(rows))
    return path


def record(steps: Sequence[float], values: Sequence[float], seed: int = 0) -> RunRecord:
    rows = tuple({"env_steps": s, "test_return": v} for s, v in zip(steps, values, strict=True))
    return RunRecord(Path(f"run{seed}"), "qmix", "toy", seed, rows)


# ---- bootstrap --------------------------------------------------------------------------------


def test_bootstrap_ci_contains_the_mean_and_is_reproducible() -> None:
    samples = np.random.default_rng(1).normal(size=(5, 40))  # [K, G]
    mean, low, high = bootstrap_mean_ci(samples)
    assert mean.shape == low.shape == high.shape == (40,)
    np.testing.assert_allclose(mean, samples.mean(axis=0))
    assert np.all(low <= mean) and np.all(mean <= high) and np.all(low < high)
    again = bootstrap_mean_ci(samples)
    np.testing.assert_array_equal(low, again[1])
    np.testing.assert_array_equal(high, again[2])
    # A wider confidence level gives a band at least as wide.
    _, low99, high99 = bootstrap_mean_ci(samples, confidence=0.99)
    assert np.all(high99 - low99 >= high - low - 1e-12)


def test_bootstrap_ci_narrows_with_more_seeds_of_the_same_spread() -> None:
    few = np.array([-1.0, 1.0])  # 2 seeds, std 1
    many = np.array([-1.0, 1.0] * 10)  # 20 seeds, same std
    widths = []
    for samples in (few, many):
        mean, low, high = bootstrap_mean_ci(samples)
        assert mean.shape == ()
        assert low <= mean <= high
        widths.append(float(high - low))
    assert widths[1] < 0.5 * widths[0]


def test_bootstrap_ci_of_identical_seeds_or_one_seed_has_zero_width() -> None:
    same = np.tile(np.linspace(0.0, 3.0, 7), (4, 1))  # 4 identical seeds
    mean, low, high = bootstrap_mean_ci(same)
    np.testing.assert_array_equal(low, mean)
    np.testing.assert_array_equal(high, mean)
    one = np.array([[0.5, 2.0]])
    mean, low, high = bootstrap_mean_ci(one)
    np.testing.assert_array_equal(mean, [0.5, 2.0])
    np.testing.assert_array_equal(low, mean)
    np.testing.assert_array_equal(high, mean)


@pytest.mark.parametrize(
    ("samples", "kwargs"),
    [
        (np.zeros((0, 3)), {}),
        (np.zeros((2, 2, 2)), {}),
        (np.array([1.0, np.nan]), {}),
        (np.ones(3), {"confidence": 1.0}),
        (np.ones(3), {"resamples": 0}),
    ],
)
def test_bootstrap_rejects_bad_input(samples: np.ndarray, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        bootstrap_mean_ci(samples, **kwargs)  # type: ignore[arg-type]


# ---- IQM ----------------------------------------------------------------------------------------


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm(np.array([8.0, 1.0, 5.0, 3.0, 7.0, 2.0, 6.0, 4.0])) == pytest.approx(4.5)
    assert iqm(np.arange(12.0).reshape(3, 4)) == pytest.approx(5.5)  # flattened, drops 3 + 3
    assert iqm(np.array([2.0, 4.0])) == pytest.approx(3.0)  # too few to trim: plain mean


def test_iqm_is_robust_to_one_outlier() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 1000.0])
    assert iqm(values) == pytest.approx(4.5)
    assert values.mean() > 100


def test_iqm_rejects_empty_and_nan() -> None:
    with pytest.raises(ValueError):
        iqm(np.array([]))
    with pytest.raises(ValueError):
        iqm(np.array([1.0, np.nan, 2.0, 3.0]))


# ---- curves and grid --------------------------------------------------------------------------


def test_align_curves_interpolates_onto_the_common_range() -> None:
    a = (np.array([0.0, 10.0, 20.0, 30.0]), np.array([0.0, 1.0, 2.0, 3.0]))
    b = (np.array([5.0, 15.0, 25.0, 35.0]), np.array([0.0, 10.0, 20.0, 30.0]))
    grid, values = align_curves([a, b])
    # Union of evaluation steps inside [max first, min last] = [5, 30].
    np.testing.assert_array_equal(grid, [5.0, 10.0, 15.0, 20.0, 25.0, 30.0])
    np.testing.assert_allclose(values[0], [0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    np.testing.assert_allclose(values[1], [0.0, 5.0, 10.0, 15.0, 20.0, 25.0])
    # Identical steps: values pass through unchanged.
    grid, values = align_curves([a, a])
    np.testing.assert_array_equal(grid, a[0])
    np.testing.assert_array_equal(values, [a[1], a[1]])


def test_align_curves_rejects_disjoint_seeds() -> None:
    early = (np.array([0.0, 10.0]), np.array([0.0, 1.0]))
    late = (np.array([20.0, 30.0]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="share no range"):
        align_curves([early, late])


def test_metric_curve_sorts_skips_train_rows_and_keeps_the_last_duplicate() -> None:
    rows = (
        {"env_steps": 20, "test_return": 2.0},
        {"env_steps": 15, "train_return": 9.0},
        {"env_steps": 10, "test_return": 1.0},
        {"env_steps": 20, "test_return": 3.0},  # resumed run rewrote step 20
        {"env_steps": 30, "test_return": None},
    )
    run = RunRecord(Path("r"), "qmix", "toy", 0, rows)
    steps, values = metric_curve(run, "test_return")
    np.testing.assert_array_equal(steps, [10.0, 20.0])
    np.testing.assert_array_equal(values, [1.0, 3.0])
    with pytest.raises(ValueError, match="test_win_rate"):
        metric_curve(run, "test_win_rate")


def test_curve_stats_single_seed_has_no_band_and_several_seeds_do() -> None:
    one = curve_stats([record([0, 10, 20], [0.0, 1.0, 2.0])])
    assert one.n_seeds == 1
    np.testing.assert_array_equal(one.low, one.mean)
    np.testing.assert_array_equal(one.high, one.mean)
    three = curve_stats([record([0, 10, 20], [0.0, 1.0 + k, 2.0 - k], seed=k) for k in range(3)])
    assert three.n_seeds == 3
    np.testing.assert_allclose(three.mean, [0.0, 2.0, 1.0])
    assert np.all(three.low <= three.mean) and np.all(three.mean <= three.high)
    assert three.high[1] > three.low[1]


# ---- finding and loading runs -----------------------------------------------------------------


def test_find_run_dirs_expands_parents_one_level(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    a = write_run(runs, "qmix", "toy", 0, [(10, 1.0)])
    b = write_run(runs, "vdn", "toy", 0, [(10, 1.0)])
    (runs / "notes").mkdir()  # not a run: skipped inside a parent
    deep = write_run(runs / "benchmarks", "iql", "toy", 0, [(10, 1.0)])
    assert find_run_dirs([runs]) == [a, b]  # two levels down is not searched
    assert find_run_dirs([deep, runs, a]) == [deep, a, b]  # order kept, duplicates dropped


def test_find_run_dirs_rejects_non_run_dirs(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="not a run directory"):
        find_run_dirs([empty])
    with pytest.raises(ValueError, match="not a directory"):
        find_run_dirs([tmp_path / "missing"])
    with pytest.raises(ValueError, match="no run directories"):
        find_run_dirs([])
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.yaml").write_text("algo: qmix\n")  # no metrics.jsonl
    with pytest.raises(ValueError, match="not a run directory"):
        load_runs([half])


def test_load_runs_reads_config_and_rows(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, "qmix", "toy", 3, [(10, 0.5), (20, 0.75)], mixer_input="obs")
    with (run_dir / "metrics.jsonl").open("a") as handle:
        handle.write('{"env_steps": 30, "test_ret')  # live run, line half written
    (run,) = load_runs([run_dir])
    assert (run.algo, run.task, run.seed, run.name) == ("qmix", "toy", 3, "qmix")
    assert len(run.rows) == 4
    (split,) = load_runs([run_dir], split_by=["mixer_input"])
    assert split.name == "qmix [mixer_input=obs]"
    with pytest.raises(ValueError, match="no_such_key"):
        load_runs([run_dir], split_by=["no_such_key"])


def test_until_compares_a_longer_run_at_a_common_budget(tmp_path: Path) -> None:
    long = write_run(tmp_path, "qmix", "toy", 0, [(10, 0.2), (20, 0.4), (30, 0.9)])
    (run,) = load_runs([long], until=20)
    assert max(r["env_steps"] for r in run.rows) == 20
    table = summary_table(load_runs([long], until=20))
    assert "| toy | qmix | 1 | 0.400 |" in table  # final = the last test at or before step 20
    cli = subprocess.run(
        [sys.executable, "-m", "qmix", "summary", str(long), "--until", "10"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "| toy | qmix | 1 | 0.200 |" in cli.stdout


def test_load_runs_rejects_the_same_seed_twice(tmp_path: Path) -> None:
    write_run(tmp_path, "qmix", "toy", 0, [(10, 1.0)], name="first")
    write_run(tmp_path, "qmix", "toy", 0, [(10, 1.0)], name="second")
    with pytest.raises(ValueError, match="pass only one"):
        load_runs([tmp_path])


# ---- records of benchmarks/learn.py -----------------------------------------------------------


def test_load_record_gives_one_run_per_seed_with_algo_task_and_variant(tmp_path: Path) -> None:
    seeds = {0: [(10, 0.5), (20, 1.0)], 2: [(12, 0.25), (24, 0.75), (36, 1.0)]}
    path = write_record(tmp_path, "qmix_toy", "qmix", "toy", seeds, mixer_input="state")
    runs = load_record(path)
    assert [(r.algo, r.task, r.seed, r.variant, r.name) for r in runs] == [
        ("qmix", "toy", 0, "", "qmix"),
        ("qmix", "toy", 2, "", "qmix"),
    ]
    assert all(r.run_dir == path for r in runs)
    assert runs[1].rows == tuple(json.loads(path.read_text())["2"])  # every row, file order
    steps, values = metric_curve(runs[1], "test_return")
    np.testing.assert_array_equal(steps, [12.0, 24.0, 36.0])
    np.testing.assert_array_equal(values, [0.25, 0.75, 1.0])
    with pytest.raises(ValueError, match=r"qmix_toy\.json \(seed 2\) has no rows with 'test_win"):
        metric_curve(runs[1], "test_win_rate")  # the message names the seed inside the record
    # A variant (learn.py --name) keeps the rest of its name, also when split by config keys.
    wide = write_record(tmp_path, "qmix_toy_wide_3M", "qmix", "toy", seeds, mixer_input="obs")
    assert {r.name for r in load_record(wide)} == {"qmix [wide_3M]"}
    (split,) = {r.name for r in load_runs([wide], split_by=["mixer_input"])}
    assert split == "qmix [wide_3M, mixer_input=obs]"
    other = write_record(tmp_path, "baseline", "vdn", "toy", seeds)  # not <algo>_<task>...
    assert {r.name for r in load_record(other)} == {"vdn [baseline]"}
    with pytest.raises(ValueError, match="no_such_key"):
        load_record(path, split_by=["no_such_key"])


def test_a_variant_record_does_not_merge_with_the_preset_record(tmp_path: Path) -> None:
    seeds = {0: [(10, 0.5), (20, 1.0)], 1: [(10, 0.0), (20, 0.5)]}
    preset = write_record(tmp_path, "qmix_toy", "qmix", "toy", seeds)
    variant = write_record(tmp_path, "qmix_toy_3M", "qmix", "toy", seeds)
    runs = load_runs([preset, variant, preset])  # the same record twice is read once
    assert len(runs) == 4
    rows = {r["algo"]: r["seeds"] for r in summary_rows(runs)}
    assert rows == {"qmix": 2, "qmix [3M]": 2}


def test_a_shipped_record_loads() -> None:
    runs = load_runs([LBF_RECORD])
    assert [r.seed for r in runs] == [0, 1, 2]
    assert {(r.algo, r.task, r.name) for r in runs} == {("qmix", "lbf_8x8_2p_2f_coop", "qmix")}
    for run in runs:
        steps, _ = metric_curve(run, "test_return")
        assert steps.size > 10 and steps[-1] > steps[0]
    (row,) = summary_rows(runs)
    assert row["seeds"] == 3


def test_plot_draws_a_record_beside_run_dirs_of_another_algorithm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import matplotlib.axes
    from PIL import Image

    from qmix.cli import main

    task = "lbf_8x8_2p_2f_coop"
    runs_dir = tmp_path / "runs" / "benchmarks"
    for seed in range(2):
        write_run(runs_dir, "vdn", task, seed, [(10_000, 0.1), (500_000, 0.5), (990_000, 0.9)])
    drawn: list[str] = []
    original = matplotlib.axes.Axes.plot

    def spy(self: matplotlib.axes.Axes, *args: Any, **kwargs: Any) -> Any:
        drawn.append(str(kwargs.get("label")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    out = tmp_path / "out.png"
    assert main(["plot", str(LBF_RECORD), str(runs_dir), "-o", str(out)]) == 0
    assert sorted(drawn) == ["qmix (3 seeds)", "vdn (2 seeds)"]
    with Image.open(out) as image:
        assert image.format == "PNG"
    assert main(["summary", str(runs_dir), str(LBF_RECORD)]) == 0
    table = capsys.readouterr().out
    assert f"| {task} | qmix | 3 |" in table and f"| {task} | vdn | 2 |" in table


def _bad_json(tmp_path: Path, data: object) -> Path:
    path = write_record(tmp_path, "qmix_toy", "qmix", "toy", {0: [(10, 1.0)]})
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([[{"env_steps": 1}]], "not a record: expected a JSON object of seed"),
        ({}, "not a record: expected a JSON object of seed"),
        ({"first": [{"env_steps": 1}]}, "key 'first' is not a seed"),
        ({"0": {"env_steps": 1}}, "seed 0 is not a non-empty list of metric rows"),
        ({"0": []}, "seed 0 is not a non-empty list of metric rows"),
        ({"0": [{"test_return": 1.0}]}, "seed 0, row 1 is not a metrics row"),
        ({"0": [{"env_steps": "10", "test_return": 1.0}]}, "seed 0, row 1 is not a metrics row"),
        (
            {"0": [{"env_steps": 10}], "1": [{"env_steps": 20, "test_return": 1.0}] * 2},
            r"seed 1, row 2 \(test row\) is at 20 env steps after a row at 20",
        ),
        (
            {
                "0": [
                    {"env_steps": 20, "train_return": 0.0},
                    {"env_steps": 10, "test_return": 1.0},
                    {"env_steps": 10, "train_return": 0.0},
                ]
            },
            r"seed 0, row 3 \(train row\) is at 10 env steps after a row at 20",
        ),
    ],
)
def test_load_record_rejects_what_is_not_a_record(
    tmp_path: Path, data: object, message: str
) -> None:
    path = _bad_json(tmp_path, data)
    with pytest.raises(ValueError, match=message):
        load_runs([path])


def test_load_record_rejects_missing_md_eval_scores_and_bad_files(tmp_path: Path) -> None:
    path = write_record(tmp_path, "qmix_toy", "qmix", "toy", {0: [(10, 1.0)]})
    eval_scores = tmp_path / "qmix_toy_eval.json"
    eval_scores.write_text(json.dumps({"0": {"final": 1.0, "best": 1.0, "best_at": 10}}))
    with pytest.raises(ValueError, match=r"evaluation scores .* pass the record qmix_toy\.json"):
        load_runs([eval_scores])
    with pytest.raises(ValueError, match="does not exist"):
        load_runs([tmp_path / "qmix_other.json"])
    md = path.with_suffix(".md")
    text = md.read_text()
    md.write_text(text.replace("algo: qmix\n", ""))
    with pytest.raises(ValueError, match="configuration has no algo"):
        load_runs([path])
    md.write_text(text.split("```yaml")[0])
    with pytest.raises(ValueError, match="no ```yaml block"):
        load_runs([path])
    md.write_text(text.replace("algo: qmix", "algo: [qmix"))
    with pytest.raises(ValueError, match="not valid YAML"):
        load_runs([path])
    md.unlink()
    with pytest.raises(ValueError, match=r"has no qmix_toy\.md next to it"):
        load_runs([path])
    md.write_text(text)
    path.write_text('{"0": [')
    with pytest.raises(ValueError, match="not valid JSON"):
        load_runs([path])
    with pytest.raises(ValueError, match="not a directory"):
        load_runs([md])  # the .md is not what to pass


def test_cli_reports_a_bad_record_in_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from qmix.cli import main

    path = write_record(tmp_path, "qmix_toy", "qmix", "toy", {0: [(10, 1.0)]})
    path.with_suffix(".md").unlink()
    out = tmp_path / "x.png"
    for argv in (["plot", str(path), "-o", str(out)], ["summary", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("qmix: error: ") and "has no qmix_toy.md next to it" in err
        assert err.strip().count("\n") == 0
    assert not out.exists()


def test_a_record_and_a_run_dir_with_the_same_seed_are_refused(tmp_path: Path) -> None:
    path = write_record(tmp_path / "recorded", "qmix_toy", "qmix", "toy", {0: [(10, 1.0)]})
    run_dir = write_run(tmp_path / "runs", "qmix", "toy", 0, [(10, 1.0)])
    with pytest.raises(ValueError, match=r"qmix_toy\.json and .* with seed 0: pass only one"):
        load_runs([path, run_dir])
    write_run(tmp_path / "runs", "qmix", "toy", 1, [(10, 1.0)], name="seed1")
    (_, other) = load_runs([path, tmp_path / "runs" / "seed1"])  # other seeds are fine
    assert other.seed == 1


# ---- summary ----------------------------------------------------------------------------------


def test_summary_has_one_row_per_task_and_algorithm_with_correct_numbers(
    tmp_path: Path,
) -> None:
    steps = list(range(10, 101, 10))  # 10 evaluations, 10..100 steps
    # qmix on "alpha": seed k scores step/100 + k; best is the last evaluation.
    for k in range(3):
        write_run(tmp_path, "qmix", "alpha", k, [(s + k, s / 100 + k) for s in steps])
    write_run(tmp_path, "vdn", "alpha", 0, [(s, 5.0 if s == 50 else 1.0) for s in steps])
    write_run(tmp_path, "qmix", "beta", 0, [(10, 0.0), (20, 2.0)])
    runs = load_runs([tmp_path])
    rows = {(r["task"], r["algo"]): r for r in summary_rows(runs)}
    assert set(rows) == {("alpha", "qmix"), ("alpha", "vdn"), ("beta", "qmix")}

    qmix = rows[("alpha", "qmix")]
    finals = np.array([1.0, 2.0, 3.0])
    assert qmix["seeds"] == 3
    assert qmix["final"] == pytest.approx(2.0)
    assert qmix["final_se"] == pytest.approx(finals.std(ddof=1) / np.sqrt(3))
    assert qmix["max"] == pytest.approx(2.0)
    # Final 10%: steps >= 0.9 * last step (100 + k), i.e. each seed's last two evaluations:
    # pool = [0.9, 1.0, 1.9, 2.0, 2.9, 3.0]; IQM drops one at each end -> mean of the middle 4.
    assert qmix["iqm"] == pytest.approx(1.95)
    assert (qmix["first_step"], qmix["last_step"]) == (100, 102)

    vdn = rows[("alpha", "vdn")]
    assert (vdn["seeds"], vdn["final"], vdn["final_se"], vdn["max"]) == (1, 1.0, 0.0, 5.0)
    assert rows[("beta", "qmix")]["final"] == pytest.approx(2.0)

    table = summary_table(runs)
    lines = table.strip().splitlines()
    assert len(lines) == 2 + 3  # header, separator, one row per (task, algorithm)
    assert lines[2].split("|")[1:5] == [" alpha ", " qmix ", " 3 ", " 2.000 ± 0.577 "]
    assert "| alpha | vdn | 1 | 1.000 | 5.000 | 1.000 | 100 |" in lines
    assert lines[-1].startswith("| beta | qmix |")
    assert "| 100–102 |" in lines[2]


def test_summary_and_plot_reject_a_metric_no_run_has(tmp_path: Path) -> None:
    write_run(tmp_path, "qmix", "toy", 0, [(10, 1.0)])
    runs = load_runs([tmp_path])
    with pytest.raises(ValueError, match="test_win_rate"):
        summary_table(runs, metric="test_win_rate")
    with pytest.raises(ValueError, match="test_win_rate"):
        plot_comparison(runs, tmp_path / "x.png", metric="test_win_rate")
    with pytest.raises(ValueError, match="no runs"):
        summary_table([])


# ---- plot -------------------------------------------------------------------------------------


def _fake_benchmark(root: Path, tasks: Sequence[str], seeds: int) -> list[RunRecord]:
    rng = np.random.default_rng(0)
    for task in tasks:
        for algo, rate in (("qmix", 3.0), ("vdn", 1.5)):
            for seed in range(seeds):
                # Episode-based collection: each seed evaluates at slightly different steps.
                steps = np.arange(1, 41) * 2500 + rng.integers(0, 200, size=40)
                values = 1 - np.exp(-rate * steps / 1e5) + rng.normal(0, 0.05, size=40)
                evals = [(int(s), float(v)) for s, v in zip(steps, values, strict=True)]
                write_run(root, algo, task, seed, evals)
    return load_runs([root])


def test_plot_writes_a_png_for_two_algorithms_three_seeds(tmp_path: Path) -> None:
    from PIL import Image

    runs = _fake_benchmark(tmp_path / "runs", ["lbf_8x8", "rware_tiny"], seeds=3)
    out = plot_comparison(runs, tmp_path / "plots" / "curves.png")
    with Image.open(out) as image:
        image.verify()
    with Image.open(out) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert 800 <= width <= 2500 and 300 <= height <= 1200 and width > height


def test_plot_writes_a_png_for_a_single_seed(tmp_path: Path) -> None:
    from PIL import Image

    write_run(tmp_path, "qmix", "toy", 0, [(100, 0.0), (200, 0.5), (300, 1.0)])
    out = plot_comparison(load_runs([tmp_path]), tmp_path / "one.png")
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size[0] >= 400 and image.size[1] >= 300


def test_importing_compare_does_not_import_matplotlib() -> None:
    code = "import sys, qmix.compare; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---- the seed mean in benchmarks/learn.py's plot ------------------------------------------


def test_seed_mean_curve_interpolates_seeds_onto_their_common_range() -> None:
    from qmix.plots import seed_mean_curve

    train = {"env_steps": 50, "train_return": 9.0}  # no test metric: skipped
    seed_a = [
        train,
        {"env_steps": 100, "test_win_rate": 0.0},
        {"env_steps": 300, "test_win_rate": 1.0},
    ]
    seed_b = [{"env_steps": 200, "test_win_rate": 0.5}, {"env_steps": 400, "test_win_rate": 0.5}]
    grid, mean = seed_mean_curve([seed_a, seed_b], "test_win_rate")
    # Common range [200, 300]; seed a is 0.5 at 200 (interpolated) and 1.0 at 300.
    np.testing.assert_array_equal(grid, [200.0, 300.0])
    np.testing.assert_allclose(mean, [0.5, 0.75])


def test_seed_mean_curve_keeps_the_later_row_at_a_repeated_step() -> None:
    from qmix.plots import seed_mean_curve

    rows = [
        {"env_steps": 10, "test_return": 1.0},
        {"env_steps": 20, "test_return": 2.0},
        {"env_steps": 20, "test_return": 4.0},
    ]
    grid, mean = seed_mean_curve([rows, rows])
    np.testing.assert_array_equal(grid, [10.0, 20.0])
    np.testing.assert_allclose(mean, [1.0, 4.0])


def test_learn_plot_with_mean_draws_one_more_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.axes

    from qmix.plots import plot_curves

    drawn: list[str] = []
    original = matplotlib.axes.Axes.plot

    def record(self: matplotlib.axes.Axes, *args: Any, **kwargs: Any) -> Any:
        drawn.append(str(kwargs.get("label")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", record)
    seeds = [[{"env_steps": s, "test_win_rate": v} for s, v in ((100, 0.2), (200, 0.6))]] * 3
    runs = [(f"seed {i}", rows) for i, rows in enumerate(seeds)]
    plot_curves(runs, tmp_path / "a.png", metric="test_win_rate")
    assert drawn == ["seed 0", "seed 1", "seed 2"]
    drawn.clear()
    plot_curves(runs, tmp_path / "b.png", metric="test_win_rate", with_mean=True)
    assert drawn == ["seed 0", "seed 1", "seed 2", "mean of 3"]
    assert (tmp_path / "b.png").stat().st_size > 0


def test_a_run_directory_with_a_broken_config_is_a_one_line_error(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, "qmix", "two_step", 0, [(10, 1.0)])
    (run_dir / "config.yaml").write_text("algo: [qmix\n")
    with pytest.raises(ValueError, match=r"config.yaml is not valid YAML .*: restore it"):
        load_runs([run_dir])
