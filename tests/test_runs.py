"""Runs users can trust: exact resume after SIGKILL, safe checkpoints, metadata, TensorBoard,
loading and evaluation, several seeds."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import torch

import qmix
from qmix.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from qmix.learners.coma import COMALearner
from qmix.learners.q import QLearner
from qmix.logging import CLOCK_KEYS
from qmix.policy.exploration import LinearSchedule
from qmix.trainer import train, updates_due

ROOT = Path(__file__).resolve().parents[1]
# two-step game: 2-step episodes, so a few thousand steps hold many checkpoints and updates
SMALL = ["total_env_steps=6000", "checkpoint_interval_env_steps=500", "test_interval_env_steps=500"]
# QMIX_TEST_DEVICE=cuda runs these runs' learners on a GPU (a check for machines that have one)
SMALL.append(f"device={os.environ.get('QMIX_TEST_DEVICE', 'cpu')}")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "qmix", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    for row in rows:
        for key in CLOCK_KEYS:  # the only figures that depend on the clock
            row.pop(key, None)
    return rows


def _networks(run_dir: Path, name: str = "checkpoint.pt") -> dict[str, dict[str, torch.Tensor]]:
    return load_checkpoint(run_dir / name)["learner"]["networks"]


def _differing(
    ours: dict[str, dict[str, torch.Tensor]], theirs: dict[str, dict[str, torch.Tensor]]
) -> list[str]:
    """The ``network.tensor`` names whose values are not bit-for-bit equal."""
    return [
        f"{name}.{key}"
        for name, state in theirs.items()
        for key, tensor in state.items()
        if not torch.equal(ours[name][key], tensor)
    ]


# runs of an algorithm with overrides of their own: (algorithm, overrides). The variants run
# a third of SMALL's budget (still 4 checkpoints): the family's updates cost 2-4x QMIX's, and
# at 6,000 steps their four cases took ~340 s of the suite.
SHORT = "total_env_steps=2000"
VARIANTS = {
    # a rate ramped from 0.2 to 0.7 over the first 1,000 steps: the fraction owed and the
    # schedule's position both cross the stop
    "qmix_per_env_step": (
        "qmix",
        [
            "updates_per_env_step=0.7",
            "updates_per_env_step_start=0.2",
            "updates_per_env_step_anneal_env_steps=1000",
            # and learning rates falling over 1,500 steps: their schedule crosses the stop too
            "lr_anneal_env_steps=1500",
            "lr_finish_fraction=0.1",
            SHORT,
        ],
    ),
    **{algo: (algo, [SHORT]) for algo in ("ow_qmix", "cw_qmix", "qtran", "qplex")},
}


def _variant(name: str) -> tuple[str, list[str]]:
    return VARIANTS.get(name, (name, []))


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Uninterrupted runs of SMALL by algorithm (or variant), to compare stopped and resumed
    runs with."""
    made: dict[str, Path] = {}

    def reference(name: str) -> Path:
        if name not in made:
            run_dir = tmp_path_factory.mktemp(f"reference_{name}") / "run"
            torch.set_num_threads(1)
            algo, extra = _variant(name)
            cfg = qmix.make_config(algo, "two_step", SMALL + extra)
            train(cfg, run_dir=run_dir, progress=False)
            made[name] = run_dir
        return made[name]

    return reference


def _start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "qmix", *args]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


SIGNALS = [signal.SIGKILL, signal.SIGINT, signal.SIGTERM]


# every signal for an off-policy and an on-policy learner; SIGKILL (at a checkpoint write, the
# hardest case) for each variant of the Q learner with networks of its own, and for updates per
# env step (a fraction of an update owed across the stop)
@pytest.mark.parametrize(
    ("algo", "signum"),
    [
        *[("qmix", s) for s in SIGNALS],
        *[("coma", s) for s in SIGNALS],
        *[(algo, signal.SIGKILL) for algo in ("ow_qmix", "cw_qmix", "qtran", "qplex")],
        ("qmix_per_env_step", signal.SIGKILL),
    ],
)
def test_a_run_stopped_by_a_signal_at_a_random_moment_resumes_exactly(
    tmp_path: Path, references: Callable[[str], Path], signum: int, algo: str
) -> None:
    """SIGKILL anywhere (even inside a checkpoint write) loses at most what came after the last
    checkpoint; SIGINT and SIGTERM write one first and exit 130 / 143. Either way the resumed
    run ends with the metrics and weights of a run never stopped."""
    reference = references(algo)
    killed = tmp_path / "killed"
    delay = random.Random(signum * 7919 + int(time.time())).uniform(0.0, 1.5)
    name, extra = _variant(algo)
    proc = _start(
        "train", name, "two_step", *SMALL, *extra, "--run-dir", str(killed), "--quiet", cwd=tmp_path
    )
    deadline = time.monotonic() + 120
    while not (killed / "config.yaml").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    if signum == signal.SIGKILL:  # aim at a checkpoint write: kill while its temp file exists
        deadline = time.monotonic() + delay + 2
        while not list(killed.glob(".checkpoint.pt.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.0005)
    else:
        time.sleep(delay)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip(f"the run finished within {delay:.2f} s, before the signal")
    assert proc.returncode == (-signal.SIGKILL if signum == signal.SIGKILL else 128 + signum)
    if signum != signal.SIGKILL:
        line = stderr.strip().splitlines()[-1]
        assert "checkpoint saved" in line and f"qmix train --resume {killed}" in line
    stopped_at = None
    if not (killed / "checkpoint.pt").exists():  # SIGKILL before the first checkpoint
        assert signum == signal.SIGKILL
        out = _cli("train", "--resume", str(killed), cwd=tmp_path)
        assert out.returncode == 2 and "--restart" in _one_line(out.stderr)
        out = _cli("train", "--restart", str(killed), "--quiet", cwd=tmp_path)
    else:
        stopped_at = load_checkpoint(killed / "checkpoint.pt")["loop"]["env_steps"]
        budget = [o for o in (*SMALL, *extra) if o.startswith("total_env_steps=")][-1]
        assert 0 < stopped_at < int(budget.split("=")[1])
        out = _cli("train", "--resume", str(killed), "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert not list(killed.glob(".*.tmp"))  # a kill's half-written checkpoint is gone
    assert _rows(killed) == _rows(reference)
    for name in ("checkpoint.pt", "model_best.pt"):
        assert _differing(_networks(killed, name), _networks(reference, name)) == [], name
    meta = json.loads((killed / "metadata.json").read_text())
    if stopped_at is None:
        assert "restarted" in meta and "resumed" not in meta
    else:
        assert [entry["from_env_steps"] for entry in meta["resumed"]] == [stopped_at]


def test_run_directory_holds_metadata_and_readable_tensorboard_events(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(qmix.make_config("qmix", "two_step", SMALL), run_dir=tmp_path, progress=False)
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["seed"] == 0
    assert meta["versions"]["qmix"] == qmix.__version__
    assert meta["versions"]["torch"] == torch.__version__
    assert "git" in meta
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tests = [row for row in run.metrics if "test_return" in row]
    scalars = events.Scalars("test/test_return")
    assert [e.step for e in scalars] == [row["env_steps"] for row in tests]
    assert [e.value for e in scalars] == pytest.approx([row["test_return"] for row in tests])
    assert "train/loss" in events.Tags()["scalars"]
    # QMIX's mixer_gain in the training rows written after the first update, and in TensorBoard
    learned = [row for row in run.metrics if row.get("loss") is not None]
    assert learned and all(row["mixer_gain"] > 0 for row in learned)
    assert "train/mixer_gain" in events.Tags()["scalars"]


def test_corrupted_checkpoint_is_a_clear_error_and_is_not_overwritten(tmp_path: Path) -> None:
    train(qmix.make_config("qmix", "two_step", SMALL), run_dir=tmp_path, progress=False)
    checkpoint = tmp_path / "checkpoint.pt"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    metrics_before = (tmp_path / "metrics.jsonl").read_bytes()
    out = _cli("train", "--resume", str(tmp_path), "total_env_steps=8000", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "corrupted or truncated" in out.stderr
    assert checkpoint.read_bytes() == data[: len(data) // 2]
    assert (tmp_path / "metrics.jsonl").read_bytes() == metrics_before


class _Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("this must never run",))


def test_a_checkpoint_of_an_older_format_is_refused_naming_its_version(tmp_path: Path) -> None:
    """Format 1 (before digests, run ids and configs in every file) cannot be verified."""
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "learner": {"networks": {}}}, path)
    with pytest.raises(CheckpointError, match=r"not a qmix checkpoint of format 2 \(found 1\)"):
        load_checkpoint(path)


def test_loading_never_unpickles_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "x": _Payload()}, path)
    with pytest.raises(CheckpointError, match="does not unpickle"):
        load_checkpoint(path)


def test_a_failed_write_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1})

    def crash(obj: object, file: Path) -> None:
        Path(file).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_resume_rejects_overrides_other_than_the_budget(tmp_path: Path) -> None:
    train(qmix.make_config("qmix", "two_step", SMALL), run_dir=tmp_path, progress=False)
    out = _cli("train", "--resume", str(tmp_path), "lr=0.1", cwd=tmp_path)
    assert out.returncode == 2 and "total_env_steps" in out.stderr


def test_resume_extends_the_budget(tmp_path: Path) -> None:
    train(qmix.make_config("qmix", "two_step", SMALL), run_dir=tmp_path, progress=False)
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"env_steps": 61')  # a row half written when the process was killed
    run = qmix.resume(tmp_path, progress=False, total_env_steps=7000)
    assert run.metrics == qmix.load(tmp_path).metrics  # the half row is gone
    assert run.metrics[-1]["env_steps"] >= 7000
    assert sum("test_return" in row for row in run.metrics) > 12  # earlier rows kept


def test_load_and_evaluate(tmp_path: Path) -> None:
    cfg = qmix.make_config("qmix", "two_step", ["total_env_steps=10000"])
    trained = train(cfg, run_dir=tmp_path, progress=False)
    run = qmix.load(tmp_path)
    result = run.evaluate(episodes=4)
    assert result.returns == [8.0] * 4 == trained.evaluate(episodes=4).returns
    assert result.win_rate is None
    assert (tmp_path / "q_tables.png").stat().st_size > 10_000  # drawn by training
    heatmap = tmp_path / "elsewhere" / "heatmap.png"
    out = _cli("eval", str(tmp_path), "--episodes", "2", "--heatmap", str(heatmap), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "2 greedy episodes: return 8.000" in out.stdout
    assert heatmap.stat().st_size > 10_000


def test_best_model_holds_the_networks_of_the_first_best_test(tmp_path: Path) -> None:
    overrides = ["total_env_steps=1500", "test_interval_env_steps=100", "seed=2"]
    cfg = qmix.make_config("qmix", "climbing", overrides)
    train(cfg, run_dir=tmp_path / "long", progress=False)
    tests = [row for row in _rows(tmp_path / "long") if "test_return" in row]
    scores = [row["test_return"] for row in tests]
    first_best = scores.index(max(scores))
    best_step = tests[first_best]["env_steps"]
    saved = load_checkpoint(tmp_path / "long" / "model_best.pt")["best"]
    assert saved == {"env_steps": best_step, "score": max(scores)}
    # The same seed stopped at that test is the same run up to there (same-seed test), so its
    # final networks are the ones the long run had at its best test.
    short = qmix.make_config("qmix", "climbing", [*overrides, f"total_env_steps={best_step}"])
    train(short, run_dir=tmp_path / "short", progress=False)
    best, at_best = _networks(tmp_path / "long", "model_best.pt"), _networks(tmp_path / "short")
    final = _networks(tmp_path / "long", "model.pt")
    assert _differing(best, at_best) == []
    # training went on after the best test, so the check above can fail
    assert _differing(best, final) != []
    out = _cli("eval", str(tmp_path / "long"), "--best", "--episodes", "3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "(best test): 3 greedy episodes" in out.stdout


def test_best_model_is_a_clear_error_before_any_test(tmp_path: Path) -> None:
    cfg = qmix.make_config("qmix", "two_step", ["total_env_steps=200", "test_episodes=0"])
    train(cfg, run_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match=r"no model_best\.pt"):
        qmix.load(tmp_path, best=True)


def test_load_of_a_non_run_directory_is_a_clear_error(tmp_path: Path) -> None:
    out = _cli("eval", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2 and "not a run directory" in out.stderr


def test_seeds_run_in_parallel_processes(tmp_path: Path) -> None:
    out = _cli(
        "train",
        "vdn",
        "climbing",
        "total_env_steps=300",
        "--seeds",
        "0-1",
        "--run-dir",
        str(tmp_path / "runs"),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    for seed in (0, 1):
        run_dir = tmp_path / "runs" / f"vdn_climbing_seed{seed}"
        assert qmix.load(run_dir).config.seed == seed
    bad = _cli("train", "vdn", "climbing", "--seeds", "3-1", cwd=tmp_path)
    assert bad.returncode == 2 and "--seeds" in bad.stderr


def test_a_new_run_never_writes_into_an_existing_run(tmp_path: Path) -> None:
    train(qmix.make_config("vdn", "climbing", ["total_env_steps=200"]), tmp_path, progress=False)
    before = (tmp_path / "metrics.jsonl").read_bytes()
    out = _cli("train", "vdn", "climbing", "--run-dir", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2 and "--resume" in out.stderr
    assert (tmp_path / "metrics.jsonl").read_bytes() == before


def test_eval_renders_a_gif_of_an_lbf_run(tmp_path: Path) -> None:
    pytest.importorskip("lbforaging")
    pytest.importorskip("PIL")
    from PIL import Image, ImageSequence

    cfg = qmix.make_config("qmix", "lbf_8x8_2p_2f_coop", ["total_env_steps=400", "n_envs=2"])
    train(cfg, run_dir=tmp_path / "run", progress=False)
    gif = tmp_path / "episode.gif"
    out = _cli("eval", str(tmp_path / "run"), "--episodes", "2", "--render", str(gif), cwd=tmp_path)
    if "EGL" in out.stderr or "pyglet" in out.stderr:
        pytest.skip(f"no headless OpenGL here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    steps = int(out.stdout.split("(")[-1].split(" steps")[0])
    with Image.open(gif) as image:
        frames = sum(1 for _ in ImageSequence.Iterator(image))
    assert frames == steps + 1  # the reset frame and one per step


@pytest.mark.parametrize("budget", range(20, 32))
def test_the_budget_always_ends_with_a_final_test_and_checkpoint(
    tmp_path: Path, budget: int
) -> None:
    """Episodes of different lengths carry over between collection calls; when the drain
    before a test is what crosses the budget, the run must still end with its final test,
    log row and checkpoint."""
    cfg = qmix.make_config(
        "qmix",
        "tests.conftest:CountdownEnv",
        [
            f"total_env_steps={budget}",
            "n_envs=3",
            "test_interval_env_steps=4",
            "test_episodes=1",
            "checkpoint_interval_env_steps=0",
            "log_interval_env_steps=1000",
            "tensorboard=false",
        ],
    )
    run = train(cfg, run_dir=tmp_path, progress=False)
    loop = load_checkpoint(tmp_path / "checkpoint.pt")["loop"]
    last = run.metrics[-1]["env_steps"]
    assert last >= budget and loop["env_steps"] == last
    assert any("test_return" in r and r["env_steps"] == last for r in run.metrics)
    assert any("train_return" in r and r["env_steps"] == last for r in run.metrics)


def test_updates_per_env_step_makes_updates_in_proportion_to_the_steps(tmp_path: Path) -> None:
    """Between two log rows (once learning has started) the updates made are the rate times the
    env steps collected, the fraction carried over: never more than one apart."""
    overrides = ["total_env_steps=3000", "updates_per_env_step=0.3", "log_interval_env_steps=100"]
    run = train(qmix.make_config("qmix", "two_step", overrides), run_dir=tmp_path, progress=False)
    rows = [row for row in run.metrics if "updates" in row and row["updates"] > 0]
    assert len(rows) > 20
    made = 0.0
    for before, after in itertools.pairwise(rows):
        made += 0.3 * (after["env_steps"] - before["env_steps"])
        assert abs((after["updates"] - rows[0]["updates"]) - made) <= 1.0


def test_a_ramped_update_rate_makes_the_updates_its_schedule_owes(tmp_path: Path) -> None:
    """Rate 0.1 at step 0 rising to 0.5 at step 2,000, then 0.5: the updates made by each log
    row are the schedule's integral over the steps since learning started (within one, the
    fraction carried over, plus the rate's change within one collection call); every training
    row carries the ETA the progress line shows."""
    ramp = ["updates_per_env_step_start=0.1", "updates_per_env_step_anneal_env_steps=2000"]
    overrides = ["total_env_steps=3000", "updates_per_env_step=0.5", "log_interval_env_steps=100"]
    cfg = qmix.make_config("qmix", "two_step", overrides + ramp)
    run = train(cfg, run_dir=tmp_path, progress=False)
    rows = [row for row in run.metrics if "updates" in row and row["updates"] > 0]
    assert len(rows) > 20
    rate = LinearSchedule(0.1, 0.5, 2000)
    for row in rows[1:]:
        owed = rate.total(rows[0]["env_steps"], row["env_steps"])
        assert abs((row["updates"] - rows[0]["updates"]) - owed) <= 2.0
    late = rows[-1]["updates"] - rows[-2]["updates"]
    early = rows[1]["updates"] - rows[0]["updates"]
    assert late > 2 * early  # it ramped
    assert all(row["eta_seconds"] >= 0 for row in rows) and rows[-1]["eta_seconds"] == 0


def test_a_capped_rate_carries_its_fraction_but_saves_up_no_allowance() -> None:
    """updates_per_collect 4, cap 0.2 per env step: two calls of 50 steps (10 owed: 4 each),
    then calls of 10 steps (2 owed: 2 each, not 4 from what the long ones left), then 8 steps
    (1.6: 1, then 2 with the 0.6 carried)."""
    credit, made = 0.0, []
    for steps in (50, 50, 10, 10, 8, 8):
        updates, credit = updates_due(4, credit + 0.2 * steps, per_step=False, capped=True)
        made.append(updates)
    assert made == [4, 4, 2, 2, 1, 2]
    assert updates_due(4, 2.5, per_step=True, capped=False) == (2, 0.5)  # the rate, uncapped
    assert updates_due(4, 0.0, per_step=False, capped=False) == (4, 0.0)  # per collection


def test_updates_per_env_step_max_caps_the_updates_per_collect(tmp_path: Path) -> None:
    """Two-step episodes (2 env steps, one per collection call), 4 updates per call: a cap of
    0.75 per env step makes 0.75 per step (1.5 per call: the fraction carried over); a cap of
    10 does not bind (exactly 4 per call). That an unused allowance is not saved up needs
    episodes that shorten: the pure test above checks it."""
    base = ["total_env_steps=3000", "updates_per_collect=4", "log_interval_env_steps=100"]
    for cap, per_step in ((0.75, 0.75), (10.0, 2.0)):
        cfg = qmix.make_config("qmix", "two_step", [*base, f"updates_per_env_step_max={cap}"])
        run = train(cfg, run_dir=tmp_path / str(cap), progress=False)
        rows = [row for row in run.metrics if "updates" in row and row["updates"] > 0]
        assert len(rows) > 20
        for row in rows[1:]:
            made = row["updates"] - rows[0]["updates"]
            assert abs(made - per_step * (row["env_steps"] - rows[0]["env_steps"])) <= 1.0


@pytest.mark.parametrize("algo", ["qmix", "coma"])
def test_learning_rates_fall_to_their_fraction_and_stay(algo: str, tmp_path: Path) -> None:
    """lr_anneal_env_steps=600, lr_finish_fraction=0.1: after 1,000 steps every optimiser runs
    at a tenth of its configured rate (COMA: the actors' lr and the critic's critic_lr); with
    no anneal the rates are those configured."""
    base = ["total_env_steps=1000", "lr=0.002"] + (["critic_lr=0.003"] if algo == "coma" else [])
    anneal = ["lr_anneal_env_steps=600", "lr_finish_fraction=0.1"]
    for extra, factor in (([], 1.0), (anneal, 0.1)):
        cfg = qmix.make_config(algo, "two_step", base + extra)
        run = train(cfg, run_dir=tmp_path / f"{algo}_{factor}", progress=False)
        learner = run.learner
        optimisers = (
            [(learner.agent_optimiser, 0.002), (learner.critic_optimiser, 0.003)]
            if isinstance(learner, COMALearner)
            else [(cast(QLearner, learner).optimiser, 0.002)]
        )
        for optimiser, lr in optimisers:
            assert [g["lr"] for g in optimiser.param_groups] == pytest.approx([lr * factor])


def test_updates_per_env_step_and_per_collect_are_not_both_set() -> None:
    with pytest.raises(qmix.ConfigError, match="not both"):
        qmix.make_config("qmix", "two_step", ["updates_per_env_step=0.5", "updates_per_collect=2"])
    with pytest.raises(qmix.ConfigError, match=">= 0"):
        qmix.make_config("qmix", "two_step", ["updates_per_env_step=-0.5"])
    with pytest.raises(qmix.ConfigError, match="does not use it"):
        qmix.make_config("coma", "two_step", ["updates_per_env_step=0.5"])
    with pytest.raises(qmix.ConfigError, match="set updates_per_env_step > 0 too"):
        qmix.make_config("qmix", "two_step", ["updates_per_env_step_anneal_env_steps=100"])
    with pytest.raises(qmix.ConfigError, match="must be >= 0"):
        qmix.make_config("qmix", "two_step", ["updates_per_env_step_start=-1"])
    with pytest.raises(qmix.ConfigError, match="updates_per_env_step_max must be >= 0"):
        qmix.make_config("qmix", "two_step", ["updates_per_env_step_max=-1"])
    with pytest.raises(qmix.ConfigError, match="caps updates_per_collect"):
        qmix.make_config(
            "qmix", "two_step", ["updates_per_env_step=0.5", "updates_per_env_step_max=0.2"]
        )
    with pytest.raises(qmix.ConfigError, match="does not use it"):
        qmix.make_config("coma", "two_step", ["updates_per_env_step_max=0.5"])
