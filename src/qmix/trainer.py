"""The training loop, top to bottom: collect -> store -> sample -> learn -> targets -> eval -> save.

Only this module sees the whole :class:`~qmix.config.Config`; everything it builds takes
explicit arguments.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from qmix.config import Config, ConfigError
from qmix.data.replay_buffer import ReplayBuffer
from qmix.envs.matrix import TabularGame
from qmix.envs.registry import env_spec, make_env, make_vector_env
from qmix.evaluate import format_tables, q_tables
from qmix.learner import QLearner
from qmix.logging import MetricsWriter, Progress
from qmix.networks.agents import build_agent
from qmix.networks.mixers import Mixer, build_mixer
from qmix.policy.controller import AgentController, agent_input_dim
from qmix.policy.exploration import LinearSchedule
from qmix.runner import EpisodeRunner, RolloutStats
from qmix.types import EnvInfo

TRAIN_STREAM, TEST_STREAM = 0, 1


def episode_seeds(seed: int, stream: int, first: int, count: int) -> list[int]:
    """Reset seeds for episodes ``first .. first + count - 1`` of a stream (train or test).

    Derived from counters, not from a running RNG, so a resumed run replays the same seeds.
    """
    return [
        int(np.random.SeedSequence([seed, stream, first + i]).generate_state(1)[0])
        for i in range(count)
    ]


@dataclass
class Run:
    """A finished training run.

    Attributes:
        run_dir: where its files are.
        config: the resolved configuration.
        metrics: every row written to ``metrics.jsonl``.
        learner: the trained learner (agent, mixer and targets).
        tables: learned Q tables for tabular games (``None`` otherwise).
    """

    run_dir: Path
    config: Config
    metrics: list[dict[str, Any]]
    learner: QLearner
    tables: dict[str, Any] | None = field(default=None)

    @property
    def test_returns(self) -> list[float]:
        """Greedy test return of every evaluation, in order."""
        return [row["test_return"] for row in self.metrics if "test_return" in row]


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


def new_run_dir(cfg: Config) -> Path:
    """A fresh, unique run directory under ``cfg.runs_dir``."""
    task = re.sub(r"[^A-Za-z0-9_.-]+", "-", cfg.task)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(cfg.runs_dir) / f"{cfg.algo}_{task}_seed{cfg.seed}_{stamp}"
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


def train(cfg: Config, run_dir: Path | None = None, progress: bool = True) -> Run:
    """Train ``cfg`` to its budget and return the finished :class:`Run`.

    Args:
        cfg: a validated configuration (see :func:`qmix.config.make_config`).
        run_dir: where to write; a new folder under ``cfg.runs_dir`` by default.
        progress: print progress lines and the final tables.
    """
    # ---- set-up ---------------------------------------------------------------------------
    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    rng = torch.Generator().manual_seed(cfg.seed)  # exploration draws and replay sampling
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

    run_dir = run_dir if run_dir is not None else new_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    metrics = MetricsWriter(run_dir / "metrics.jsonl")
    bar = (
        Progress(f"{cfg.algo} {cfg.task} seed {cfg.seed}", cfg.total_env_steps)
        if progress
        else None
    )

    env_steps = episodes = updates = test_episodes_run = 0
    last_target_update = last_test = last_log = 0
    recent_returns: list[float] = []
    last_loss: float | None = None
    last_learn: dict[str, float] = {}
    last_test_return: float | None = None
    last_win_rate: float | None = None
    started = time.perf_counter()

    while env_steps < cfg.total_env_steps:
        # ---- collect: one episode per environment, epsilon-greedy ------------------------
        epsilon = schedule.value(env_steps)
        seeds = episode_seeds(cfg.seed, TRAIN_STREAM, episodes, cfg.n_envs)
        batch, stats = runner.run(seeds, epsilon, rng)
        env_steps += stats.env_steps
        episodes += cfg.n_envs
        recent_returns = (recent_returns + stats.returns)[-100:]

        # ---- store ---------------------------------------------------------------------
        buffer.insert(batch)

        # ---- sample and learn ------------------------------------------------------------
        if buffer.can_sample(cfg.batch_size_episodes):
            for _ in range(cfg.updates_per_collect):
                sample = buffer.sample(cfg.batch_size_episodes, rng).to(cfg.device)
                learner_stats = learner.train(sample)
                updates += 1
                last_loss = learner_stats.loss
                last_learn = dataclasses.asdict(learner_stats)
                # ---- targets: soft after every update, or hard every K episodes ----------
                if cfg.target_update == "soft":
                    learner.soft_update_targets(cfg.target_tau)
        if (
            cfg.target_update == "hard"
            and episodes - last_target_update >= cfg.target_update_interval_episodes
        ):
            learner.hard_update_targets()
            last_target_update = episodes

        # ---- evaluate greedily ------------------------------------------------------------
        finished = env_steps >= cfg.total_env_steps
        if cfg.test_episodes > 0 and (
            env_steps - last_test >= cfg.test_interval_env_steps or finished
        ):
            test = evaluate_greedy(runner, cfg, cfg.test_episodes, test_episodes_run)
            test_episodes_run += cfg.test_episodes
            last_test = env_steps
            last_test_return = float(np.mean(test.returns))
            row: dict[str, Any] = {
                "env_steps": env_steps,
                "episodes": episodes,
                "test_return": last_test_return,
                "test_length": float(np.mean(test.lengths)),
            }
            won = [i["battle_won"] for i in test.infos if "battle_won" in i]
            if won:
                row["test_win_rate"] = last_win_rate = float(np.mean(won))
            metrics.write(row)

        # ---- log ---------------------------------------------------------------------------
        if env_steps - last_log >= cfg.log_interval_env_steps or finished:
            last_log = env_steps
            train_return = float(np.mean(recent_returns))
            metrics.write(
                {
                    "env_steps": env_steps,
                    "episodes": episodes,
                    "updates": updates,
                    "train_return": train_return,
                    "epsilon": epsilon,
                    "loss": last_loss,
                    **{k: v for k, v in last_learn.items() if k != "loss"},
                    "buffer_episodes": len(buffer),
                    "wall_seconds": time.perf_counter() - started,
                }
            )
            if bar is not None:
                bar.update(
                    env_steps,
                    episodes,
                    {
                        "return": train_return,
                        "test": last_test_return,
                        "win": last_win_rate,
                        "eps": epsilon,
                        "loss": last_loss,
                    },
                )

    # ---- save and report ------------------------------------------------------------------
    if bar is not None:
        bar.close()
    torch.save(
        {name: module.state_dict() for name, module in learner.modules().items()},
        run_dir / "model.pt",
    )
    tables = None
    game = None if env_spec(cfg.env).vectorised else make_env(cfg.env, cfg.env_args)
    if isinstance(game, TabularGame):
        tables = tabular_report(learner, runner, cfg, game)
        (run_dir / "q_tables.json").write_text(json.dumps(tables, indent=2))
        if progress:
            print(format_tables(tables["states"], tables["greedy"]))
    envs.close()
    curve = _try_plot(run_dir, metrics.rows, f"{cfg.algo} on {cfg.task}, seed {cfg.seed}")
    if progress:
        if curve is not None:
            print(f"learning curve: {curve}")
        print(f"run directory: {run_dir}")
    return Run(run_dir=run_dir, config=cfg, metrics=metrics.rows, learner=learner, tables=tables)


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


def _try_plot(run_dir: Path, rows: list[dict[str, Any]], title: str) -> Path | None:
    """Save ``curve.png`` when matplotlib is installed (the ``plots`` extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    from qmix.plots import plot_curves

    return plot_curves([("test return", rows)], run_dir / "curve.png", title)
