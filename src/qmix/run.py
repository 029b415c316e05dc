"""A run as an object: what training returns and what :func:`load` reads back from disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from qmix.config import Config, ConfigError, config_changes, config_from_dict
from qmix.files import (
    BEST_MODEL_NAME,
    CHECKPOINT_NAME,
    CONFIG_NAME,
    METADATA_NAME,
    METRICS_NAME,
    MODEL_NAME,
)
from qmix.types import EnvInfo

if TYPE_CHECKING:
    from qmix.learners import Learner


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
    learner: Learner
    tables: dict[str, Any] | None = field(default=None)
    trust_env: bool = True  # False for a run loaded from disk: see require_trusted_env

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
        from qmix.seeding import EVAL_STREAM, episode_seeds

        if not 1 <= episodes <= MAX_EVAL_EPISODES:
            raise ConfigError(f"episodes must be in [1, {MAX_EVAL_EPISODES}], got {episodes}")
        cfg = self.config
        require_trusted_env(cfg, self.trust_env, self.run_dir)
        b = min(n_envs or cfg.n_envs, episodes)
        envs = make_vector_env(
            cfg.env, cfg.env_args, b, cfg.env_workers, cfg.worker_timeout_seconds
        )
        returns: list[float] = []
        lengths: list[int] = []
        wins: list[bool] = []
        try:
            runner = EpisodeRunner(envs, self.learner.controller, name=cfg.env)
            # in chunks, so memory stays bounded however many episodes are asked for
            for first in range(0, episodes, EVAL_CHUNK):
                seeds = episode_seeds(
                    cfg.seed, EVAL_STREAM, first, min(EVAL_CHUNK, episodes - first)
                )
                _, stats = runner.run(seeds, None)
                returns += stats.returns
                lengths += stats.lengths
                wins += [bool(i["battle_won"]) for i in stats.infos if "battle_won" in i]
        finally:
            envs.close()
        return EvalResult(returns=returns, lengths=lengths, wins=wins)


MAX_EVAL_EPISODES = 1_000_000  # more is a typo, not an evaluation
EVAL_CHUNK = 1024  # episodes held in memory at once by Run.evaluate


def require_trusted_env(cfg: Config, trust_env: bool, run_dir: Path) -> None:
    """Refuse to build an environment whose construction would import code named by a run
    directory's ``config.yaml``, unless the user trusts that directory (issue 13).

    Registered environments are safe to build from any run directory, except where an
    ``env_args`` string holds a ``module:name`` (gymnasium imports ``module`` for such ids).

    Raises:
        ConfigError: the config names code to import and ``trust_env`` is False.
    """
    from qmix.envs.registry import ENVS

    if trust_env:
        return
    named: str | None = None
    if cfg.env not in ENVS:
        named = cfg.env
    else:
        named = next((v for v in _strings(cfg.env_args) if ":" in v), None)
    if named is not None:
        raise ConfigError(
            f"{run_dir}/config.yaml names {named!r}, which would import and run that module's "
            "code: pass --trust-env (trust_env=True) only if you trust this run directory"
        )


def _strings(value: Any) -> list[str]:
    """Every string inside nested mappings and lists."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def read_run_config(run_dir: Path) -> Config:
    """The resolved config saved in a run directory.

    Raises:
        ConfigError: ``run_dir`` has no readable ``config.yaml``.
    """
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a config mapping")
    return config_from_dict(data)


def read_run_metadata(run_dir: Path) -> dict[str, Any]:
    """A run directory's ``metadata.json`` (empty when there is none).

    Raises:
        ConfigError: the file is not a JSON object.
    """
    import json

    path = Path(run_dir) / METADATA_NAME
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ConfigError(f"{path} is not valid JSON ({err}); restore it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a JSON object; restore it")
    return data


def load(path: str | Path, best: bool = False, trust_env: bool = False) -> Run:
    """Load a run directory: its config, metrics and trained networks.

    Uses the final ``model.pt`` when the run finished, else the latest ``checkpoint.pt``
    (both read with ``torch.load(weights_only=True)``: no code is unpickled). The file must
    belong to this run (its run id) and have been trained with its ``config.yaml``.

    Args:
        path: a run directory (as written by ``qmix train``).
        best: load ``model_best.pt`` instead, the networks of the run's best greedy test
            (highest win rate where the task reports wins, else highest test return).
        trust_env: let :meth:`Run.evaluate` build a ``module:factory`` environment that the
            run's config names (it runs that module's code).

    Raises:
        ConfigError: not a run directory, or its config is invalid.
        CheckpointError: no weights, the file is damaged, of another run or another config.
    """
    from qmix.checkpoint import CheckpointError, load_checkpoint
    from qmix.learners import build_learner
    from qmix.logging import read_metrics

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
    _check_belongs(run_dir, weights, state, cfg)
    try:
        # the task's sizes are saved with the weights, so loading builds no environment
        learner = build_learner(cfg, EnvInfo(**state["env_info"]))
        learner.load_state_dict(state["learner"], weights_only=True)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{weights} does not fit the run's config ({err})") from err
    metrics_path = run_dir / METRICS_NAME
    metrics = read_metrics(run_dir) if metrics_path.exists() else []
    return Run(run_dir=run_dir, config=cfg, metrics=metrics, learner=learner, trust_env=trust_env)


def check_run_id(path: Path, state: dict[str, Any], meta: dict[str, Any]) -> None:
    """A checkpoint or model file must carry the run id of its directory's ``metadata.json``.

    Raises:
        CheckpointError: the file belongs to another run (it is left untouched).
    """
    from qmix.checkpoint import CheckpointError

    if state.get("run_id") != meta.get("run_id"):
        raise CheckpointError(
            f"{path} belongs to another run (run id {state.get('run_id')!r}, metadata.json "
            f"says {meta.get('run_id')!r}); it was left untouched: put the run's own file back"
        )


def _check_belongs(run_dir: Path, weights: Path, state: dict[str, Any], cfg: Config) -> None:
    """The weights file was written by this run, with this config (or a change of it that a
    resume accepted and recorded in metadata.json)."""
    from qmix.checkpoint import CheckpointError

    meta = read_run_metadata(run_dir)
    check_run_id(weights, state, meta)
    accepted = {key for entry in meta.get("resumed", []) for key in entry.get("config_changes", {})}
    changed = set(config_changes(state.get("config", {}), cfg.to_dict())) - accepted
    if changed:
        raise CheckpointError(
            f"{weights} was trained with another config than {run_dir / 'config.yaml'} "
            f"(differs in {', '.join(sorted(changed))}): undo the edit of config.yaml"
        )
