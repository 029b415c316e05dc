"""A run as an object: what training returns and what :func:`load` reads back from disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from qmix.config import Config, ConfigError, config_from_dict
from qmix.types import EnvInfo

if TYPE_CHECKING:
    from qmix.learner import QLearner


@dataclass(frozen=True)
class EvalResult:
    """Greedy evaluation: one entry per episode.

    Attributes:
        returns: team return of each episode (sum of the shared reward).
        lengths: steps of each episode.
        wins: battle won per episode, for tasks that report it (SMAX, SMAC); else empty.
    """

    returns: list[float]
    lengths: list[int]
    wins: list[bool] = field(default_factory=list)

    @property
    def mean_return(self) -> float:
        """Mean team return."""
        return float(np.mean(self.returns))

    @property
    def win_rate(self) -> float | None:
        """Fraction of battles won (``None`` when the task has no battles)."""
        return float(np.mean(self.wins)) if self.wins else None

    def summary(self) -> str:
        """One line: episodes, mean ± std return, mean length, win rate."""
        line = (
            f"{len(self.returns)} greedy episodes: return {self.mean_return:.3f} "
            f"± {float(np.std(self.returns)):.3f}, length {float(np.mean(self.lengths)):.1f}"
        )
        if self.win_rate is not None:
            line += f", win rate {self.win_rate:.3f}"
        return line


@dataclass
class Run:
    """A training run: its directory, config, metrics and trained networks.

    Returned by :func:`qmix.train` and by :func:`qmix.load`.

    Attributes:
        run_dir: where its files are.
        config: the resolved configuration.
        metrics: every row of ``metrics.jsonl``.
        learner: the agent and mixer networks (and targets).
        tables: learned Q tables for tabular games (``None`` otherwise).
    """

    run_dir: Path
    config: Config
    metrics: list[dict[str, Any]]
    learner: QLearner
    tables: dict[str, Any] | None = field(default=None)

    @property
    def test_returns(self) -> list[float]:
        """Greedy test return of every evaluation during training, in order."""
        return [row["test_return"] for row in self.metrics if "test_return" in row]

    def evaluate(self, episodes: int = 32, n_envs: int | None = None) -> EvalResult:
        """Play ``episodes`` greedy episodes with the trained agents.

        Seeds come from an evaluation stream of the run's seed that training never used, so
        the episodes are new to the agents and the same every time this is called.

        Args:
            episodes: how many episodes.
            n_envs: environments stepped together (default: the run's ``n_envs``).
        """
        from qmix.envs.registry import make_vector_env
        from qmix.runner import EpisodeRunner
        from qmix.trainer import EVAL_STREAM, episode_seeds

        if episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        cfg = self.config
        b = min(n_envs or cfg.n_envs, episodes)
        envs = make_vector_env(cfg.env, cfg.env_args, b, cfg.env_workers)
        try:
            runner = EpisodeRunner(envs, self.learner.controller)
            _, stats = runner.run(episode_seeds(cfg.seed, EVAL_STREAM, 0, episodes), 0.0)
        finally:
            envs.close()
        wins = [bool(i["battle_won"]) for i in stats.infos if "battle_won" in i]
        return EvalResult(returns=stats.returns, lengths=stats.lengths, wins=wins)


def read_run_config(run_dir: Path) -> Config:
    """The resolved config saved in a run directory.

    Raises:
        ConfigError: ``run_dir`` has no readable ``config.yaml``.
    """
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a config mapping")
    return config_from_dict(data)


def load(path: str | Path, best: bool = False) -> Run:
    """Load a run directory: its config, metrics and trained networks.

    Uses the final ``model.pt`` when the run finished, else the latest ``checkpoint.pt``
    (both read with ``torch.load(weights_only=True)``: no code is unpickled).

    Args:
        path: a run directory (as written by ``qmix train``).
        best: load ``model_best.pt`` instead, the networks of the run's best greedy test
            (highest win rate where the task reports wins, else highest test return).

    Raises:
        ConfigError: not a run directory, or its config is invalid.
        CheckpointError: no weights, or the file is damaged.
    """
    from qmix.checkpoint import (
        BEST_MODEL_NAME,
        CHECKPOINT_NAME,
        MODEL_NAME,
        CheckpointError,
        load_checkpoint,
    )
    from qmix.logging import read_metrics
    from qmix.trainer import build_learner

    run_dir = Path(path)
    cfg = read_run_config(run_dir)
    weights = run_dir / (BEST_MODEL_NAME if best else MODEL_NAME)
    if best and not weights.exists():
        raise CheckpointError(f"{run_dir} has no {BEST_MODEL_NAME}: the run made no test yet")
    if not weights.exists():
        weights = run_dir / CHECKPOINT_NAME
    if not weights.exists():
        raise CheckpointError(f"{run_dir} has no {MODEL_NAME} or {CHECKPOINT_NAME} to load")
    state = load_checkpoint(weights)
    try:
        # the task's sizes are saved with the weights, so loading builds no environment
        learner = build_learner(cfg, EnvInfo(**state["env_info"]))
        learner.load_state_dict(state["learner"], weights_only=True)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{weights} does not fit the run's config ({err})") from err
    metrics_path = run_dir / "metrics.jsonl"
    metrics = read_metrics(run_dir) if metrics_path.exists() else []
    return Run(run_dir=run_dir, config=cfg, metrics=metrics, learner=learner)
