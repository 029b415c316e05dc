"""The training loop, top to bottom: collect -> store -> sample -> learn -> targets -> eval -> save.

Only this module sees the whole :class:`~qmix.config.Config`; everything it builds takes
explicit arguments.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from qmix.checkpoint import (
    BEST_MODEL_NAME,
    CHECKPOINT_NAME,
    MODEL_NAME,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from qmix.config import Config, ConfigError
from qmix.data.episode_batch import EpisodeBatch
from qmix.data.replay_buffer import ReplayBuffer
from qmix.envs.matrix import TabularGame
from qmix.envs.registry import env_spec, make_env, make_vector_env
from qmix.evaluate import format_tables, q_tables
from qmix.learner import QLearner
from qmix.logging import MetricsWriter, Progress, run_metadata, write_json
from qmix.networks.agents import build_agent
from qmix.networks.mixers import Mixer, build_mixer
from qmix.policy.controller import AgentController, agent_input_dim
from qmix.policy.exploration import LinearSchedule
from qmix.run import Run, read_run_config
from qmix.runner import EpisodeRunner, RolloutStats
from qmix.types import EnvInfo

TRAIN_STREAM, TEST_STREAM, EVAL_STREAM = 0, 1, 2


def episode_seed(seed: int, stream: int, index: int) -> int:
    """Reset seed of episode ``index`` of a stream (train, test or eval).

    Derived from counters, not from a running RNG, so a resumed run replays the same seeds.
    """
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


def episode_seeds(seed: int, stream: int, first: int, count: int) -> list[int]:
    """Reset seeds for episodes ``first .. first + count - 1`` of a stream."""
    return [episode_seed(seed, stream, first + i) for i in range(count)]


def seed_stream(seed: int, stream: int, first: int) -> Iterator[int]:
    """Reset seeds for episodes ``first, first + 1, ...`` of a stream, without end."""
    return (episode_seed(seed, stream, i) for i in itertools.count(first))


def build_learner(cfg: Config, info: EnvInfo) -> QLearner:
    """Agent network, controller, mixer and learner for ``cfg`` on a task of sizes ``info``."""
    input_dim = agent_input_dim(
        info.obs_dim, info.n_actions, info.n_agents, cfg.obs_last_action, cfg.obs_agent_id
    )
    agent = build_agent(
        cfg.agent,
        input_dim,
        info.n_actions,
        info.n_agents,
        cfg.agent_hidden_dim,
        cfg.share_agent_params,
    )
    mixer_dim = info.state_dim if cfg.mixer_input == "state" else info.n_agents * info.obs_dim
    mixer: Mixer | None = build_mixer(
        cfg.mixer,
        info.n_agents,
        mixer_dim,
        cfg.mixing_embed_dim,
        cfg.hypernet_layers,
        cfg.hypernet_embed_dim,
    )
    agent.to(cfg.device)
    if mixer is not None:
        mixer.to(cfg.device)
    controller = AgentController(agent, info.n_actions, cfg.obs_last_action, cfg.obs_agent_id)
    return QLearner(
        controller,
        mixer,
        mixer_input=cfg.mixer_input,
        gamma=cfg.gamma,
        td_lambda=cfg.td_lambda,
        double_q=cfg.double_q,
        optimizer=cfg.optimizer,
        lr=cfg.lr,
        optim_alpha=cfg.optim_alpha,
        optim_eps=cfg.optim_eps,
        grad_norm_clip=cfg.grad_norm_clip,
    )


def run_name(cfg: Config) -> str:
    """``<algo>_<task>_seed<seed>``, with characters unsafe in file names replaced."""
    task = re.sub(r"[^A-Za-z0-9_.-]+", "-", cfg.task)  # module:factory tasks have a colon
    return f"{cfg.algo}_{task}_seed{cfg.seed}"


def new_run_dir(cfg: Config) -> Path:
    """A fresh, unique run directory under ``cfg.runs_dir``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(cfg.runs_dir) / f"{run_name(cfg)}_{stamp}"
    path, k = base, 1
    while path.exists():
        path, k = Path(f"{base}-{k}"), k + 1
    path.mkdir(parents=True)
    return path


def evaluate_greedy(
    runner: EpisodeRunner, cfg: Config, episodes: int, first_index: int
) -> RolloutStats:
    """``episodes`` greedy (epsilon 0) episodes from the test seed stream."""
    _, stats = runner.run(episode_seeds(cfg.seed, TEST_STREAM, first_index, episodes), 0.0)
    return stats


@dataclass
class LoopState:
    """Counters and running figures of the training loop: with the networks, optimiser,
    buffer and RNG states, everything a checkpoint needs to continue exactly."""

    env_steps: int = 0
    episodes: int = 0
    updates: int = 0
    test_episodes_run: int = 0
    last_target_update: int = 0
    last_test: int = 0
    last_log: int = 0
    last_checkpoint: int = 0
    metric_rows: int = 0
    wall_seconds: float = 0.0  # training time spent in earlier processes of this run
    recent_returns: list[float] = field(default_factory=list)
    last_loss: float | None = None
    last_learn: dict[str, float] = field(default_factory=dict)
    last_test_return: float | None = None
    last_win_rate: float | None = None
    best_test_score: float | None = None  # win rate where the task reports wins, else return
    best_test_env_steps: int = 0


def train(
    cfg: Config, run_dir: Path | None = None, progress: bool = True, resume: bool = False
) -> Run:
    """Train ``cfg`` to its budget and return the finished :class:`Run`.

    Args:
        cfg: a validated configuration (see :func:`qmix.config.make_config`).
        run_dir: where to write; a new folder under ``cfg.runs_dir`` by default.
        progress: print progress lines and the final tables.
        resume: continue from ``run_dir``'s checkpoint (see :func:`resume`).

    Raises:
        ConfigError: the task cannot be built from ``cfg`` (nothing is written).
        CheckpointError: ``resume`` and the checkpoint is missing or damaged (nothing written).
    """
    # ---- set-up ---------------------------------------------------------------------------
    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    rng = torch.Generator().manual_seed(cfg.seed)  # exploration draws and replay sampling
    checkpoint = None
    if not resume and run_dir is not None and (run_dir / "config.yaml").exists():
        raise ConfigError(
            f"{run_dir} already holds a run: continue it with --resume, or choose another run dir"
        )
    if resume:
        if run_dir is None:
            raise ValueError("resume needs the run directory")
        checkpoint = load_checkpoint(run_dir / CHECKPOINT_NAME)  # before anything is built
    try:
        envs = make_vector_env(
            cfg.env, cfg.env_args, cfg.n_envs, cfg.env_workers, cfg.worker_timeout_seconds
        )
    except ValueError as err:  # unknown task, bad env_args: the user's to fix, nothing written
        raise ConfigError(str(err)) from err
    info = envs.env_info()
    learner = build_learner(cfg, info)
    runner = EpisodeRunner(envs, learner.controller)
    buffer = ReplayBuffer(cfg.buffer_capacity_episodes, info)
    schedule = LinearSchedule(cfg.epsilon_start, cfg.epsilon_finish, cfg.epsilon_anneal_env_steps)
    state = LoopState()
    if checkpoint is not None:
        try:
            learner.load_state_dict(checkpoint["learner"])
            buffer.load_state_dict(checkpoint["buffer"])
            rng.set_state(checkpoint["rng"]["train"])
            torch.set_rng_state(checkpoint["rng"]["torch"])
            state = LoopState(**checkpoint["loop"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            envs.close()
            raise CheckpointError(
                f"checkpoint in {run_dir} does not fit this run ({err}); it was left untouched"
            ) from err

    run_dir = run_dir if run_dir is not None else new_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    if checkpoint is None:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        write_json(run_dir / "metadata.json", run_metadata(cfg.seed))
    else:
        meta_path = run_dir / "metadata.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        meta.setdefault("resumed", []).append(
            {**run_metadata(cfg.seed), "from_env_steps": state.env_steps}
        )
        write_json(meta_path, meta)
    metrics = MetricsWriter(
        run_dir / "metrics.jsonl",
        run_dir / "tb" if cfg.tensorboard else None,
        keep_rows=state.metric_rows if checkpoint is not None else None,
        resume_step=state.env_steps if checkpoint is not None else None,
    )
    bar = (
        Progress(
            f"{cfg.algo} {cfg.task} seed {cfg.seed}",
            cfg.total_env_steps,
            first_step=state.env_steps,
        )
        if progress
        else None
    )
    if progress:
        verb = f"resuming from {state.env_steps} env steps in" if checkpoint else "writing to"
        print(f"{verb} {run_dir} (continue a stopped run: qmix train --resume {run_dir})")
    started = time.perf_counter() - state.wall_seconds

    def save() -> None:
        state.last_checkpoint = state.env_steps
        state.metric_rows = len(metrics.rows)
        state.wall_seconds = time.perf_counter() - started
        save_checkpoint(
            run_dir / CHECKPOINT_NAME,
            {
                "env_info": dataclasses.asdict(info),  # task sizes: qmix.load builds no env
                "loop": dataclasses.asdict(state),
                "learner": learner.state_dict(),
                "buffer": buffer.state_dict(),
                "rng": {"train": rng.get_state(), "torch": torch.get_rng_state()},
            },
        )

    def save_networks(name: str, **extra: Any) -> None:
        """The networks alone (no optimiser, buffer or counters), for evaluation."""
        networks = {"networks": learner.state_dict()["networks"]}
        state_ = {"env_info": dataclasses.asdict(info), "learner": networks, **extra}
        save_checkpoint(run_dir / name, state_)

    def store(collected: tuple[EpisodeBatch, RolloutStats]) -> None:
        batch, stats = collected
        buffer.insert(batch)
        state.env_steps += stats.env_steps
        state.episodes += len(stats.returns)
        state.recent_returns = (state.recent_returns + stats.returns)[-100:]

    def milestones() -> tuple[bool, bool, bool]:
        """Whether the budget is spent, a test is due, a checkpoint is due."""
        interval = cfg.checkpoint_interval_env_steps
        return (
            state.env_steps >= cfg.total_env_steps,
            cfg.test_episodes > 0
            and state.env_steps - state.last_test >= cfg.test_interval_env_steps,
            interval > 0 and state.env_steps - state.last_checkpoint >= interval,
        )

    # Checkpoints are taken with no episode in flight, so episodes continue from there.
    train_seeds = seed_stream(cfg.seed, TRAIN_STREAM, state.episodes)
    while state.env_steps < cfg.total_env_steps:
        # ---- collect and store: n_envs finished episodes, epsilon-greedy ------------------
        epsilon = schedule.value(state.env_steps)
        store(runner.collect(cfg.n_envs, train_seeds, epsilon, rng))
        if any(milestones()):  # tests and checkpoints need idle envs: finish the rest first
            store(runner.drain(epsilon, rng))
        finished, test_due, save_due = milestones()  # the drain may have crossed the budget

        # ---- sample and learn ------------------------------------------------------------
        if buffer.can_sample(cfg.batch_size_episodes):
            for _ in range(cfg.updates_per_collect):
                sample = buffer.sample(cfg.batch_size_episodes, rng).to(cfg.device)
                learner_stats = learner.train(sample)
                state.updates += 1
                state.last_loss = learner_stats.loss
                state.last_learn = dataclasses.asdict(learner_stats)
                # ---- targets: soft after every update, or hard every K episodes ----------
                if cfg.target_update == "soft":
                    learner.soft_update_targets(cfg.target_tau)
        if (
            cfg.target_update == "hard"
            and state.episodes - state.last_target_update >= cfg.target_update_interval_episodes
        ):
            learner.hard_update_targets()
            state.last_target_update = state.episodes

        # ---- evaluate greedily ------------------------------------------------------------
        if cfg.test_episodes > 0 and (test_due or finished):
            test = evaluate_greedy(runner, cfg, cfg.test_episodes, state.test_episodes_run)
            state.test_episodes_run += cfg.test_episodes
            state.last_test = state.env_steps
            state.last_test_return = float(np.mean(test.returns))
            row: dict[str, Any] = {
                "env_steps": state.env_steps,
                "episodes": state.episodes,
                "test_return": state.last_test_return,
                "test_length": float(np.mean(test.lengths)),
            }
            won = [i["battle_won"] for i in test.infos if "battle_won" in i]
            if won:
                row["test_win_rate"] = state.last_win_rate = float(np.mean(won))
            metrics.write(row)
            # Keep the networks of the best test so far (as SB3's EvalCallback does): chosen
            # on the test seed stream, so `qmix eval --best` scores them on fresh seeds.
            score = row.get("test_win_rate", row["test_return"])
            if state.best_test_score is None or score > state.best_test_score:
                state.best_test_score, state.best_test_env_steps = score, state.env_steps
                save_networks(BEST_MODEL_NAME, best={"env_steps": state.env_steps, "score": score})

        # ---- log ---------------------------------------------------------------------------
        if state.env_steps - state.last_log >= cfg.log_interval_env_steps or finished:
            state.last_log = state.env_steps
            train_return = float(np.mean(state.recent_returns))
            metrics.write(
                {
                    "env_steps": state.env_steps,
                    "episodes": state.episodes,
                    "updates": state.updates,
                    "train_return": train_return,
                    "epsilon": epsilon,
                    "loss": state.last_loss,
                    **{k: v for k, v in state.last_learn.items() if k != "loss"},
                    "buffer_episodes": len(buffer),
                    "wall_seconds": time.perf_counter() - started,
                }
            )
            if bar is not None:
                bar.update(
                    state.env_steps,
                    state.episodes,
                    {
                        "return": train_return,
                        "test": state.last_test_return,
                        "win": state.last_win_rate,
                        "eps": epsilon,
                        "loss": state.last_loss,
                    },
                )

        # ---- checkpoint: periodic and final, atomically -----------------------------------
        if finished or save_due:
            save()

    # ---- save and report ------------------------------------------------------------------
    if bar is not None:
        bar.close()
    metrics.close()
    save_networks(MODEL_NAME)
    tables = None
    game = None if env_spec(cfg.env).vectorised else make_env(cfg.env, cfg.env_args)
    if isinstance(game, TabularGame):
        tables = tabular_report(learner, runner, cfg, game)
        (run_dir / "q_tables.json").write_text(json.dumps(tables, indent=2))
        _try_heatmaps(run_dir, tables, f"{cfg.algo} on {cfg.task}, seed {cfg.seed}")
        if progress:
            print(format_tables(tables["states"], tables["greedy"]))
    envs.close()
    curve = _try_plot(run_dir, metrics.rows, f"{cfg.algo} on {cfg.task}, seed {cfg.seed}")
    if progress:
        if curve is not None:
            print(f"learning curve: {curve}")
        if state.best_test_score is not None:
            print(
                f"best test {'win rate' if state.last_win_rate is not None else 'return'} "
                f"{state.best_test_score:.3f} at {state.best_test_env_steps} env steps: "
                f"{run_dir / BEST_MODEL_NAME} (qmix eval {run_dir} --best)"
            )
        print(f"run directory: {run_dir}")
    return Run(run_dir=run_dir, config=cfg, metrics=metrics.rows, learner=learner, tables=tables)


def resume(run_dir: Path, progress: bool = True, total_env_steps: int | None = None) -> Run:
    """Continue the run in ``run_dir`` from its last checkpoint, exactly as if never stopped.

    Args:
        run_dir: a run directory with ``config.yaml`` and ``checkpoint.pt``.
        progress: print progress lines.
        total_env_steps: a larger budget to train on to (default: the run's own).

    Raises:
        CheckpointError: no usable checkpoint (the files are left as they are).
        ConfigError: the saved config is unreadable or the new budget is invalid.
    """
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    if total_env_steps is not None:
        cfg = dataclasses.replace(cfg, total_env_steps=total_env_steps)
    return train(cfg, run_dir, progress=progress, resume=True)


def tabular_report(
    learner: QLearner, runner: EpisodeRunner, cfg: Config, game: TabularGame
) -> dict[str, Any]:
    """Learned tables of every state plus the greedy joint actions and return."""
    tables = q_tables(learner.controller, learner.mixer, game, cfg.mixer_input, cfg.gamma)
    batch, stats = runner.run(episode_seeds(cfg.seed, TEST_STREAM, 0, 1), 0.0)
    steps = stats.lengths[0]
    joint_actions = batch.actions[0, :steps].tolist()
    return {
        "states": tables,
        "greedy": {"joint_actions": joint_actions, "return": stats.returns[0]},
    }


def _has_matplotlib() -> bool:
    """Whether the ``plots`` extra is installed (plots are skipped without it)."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _try_plot(run_dir: Path, rows: list[dict[str, Any]], title: str) -> Path | None:
    """Save ``curve.png`` when matplotlib is installed."""
    if not _has_matplotlib():
        return None
    from qmix.plots import plot_curves

    return plot_curves([("test return", rows)], run_dir / "curve.png", title)


def _try_heatmaps(run_dir: Path, tables: dict[str, Any], title: str) -> Path | None:
    """Save ``q_tables.png`` (learned Q_tot next to the true values) when matplotlib is there."""
    if not _has_matplotlib():
        return None
    from qmix.render import plot_q_tables

    return plot_q_tables(tables, run_dir / "q_tables.png", title=title)
