"""The training loop, top to bottom: collect -> store -> sample -> learn -> targets -> eval -> save.

Only this module sees the whole :class:`~qmix.config.Config`; everything it builds takes
explicit arguments.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import re
import shutil
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml

from qmix.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from qmix.collectors import Collector
from qmix.config import Config, ConfigError, config_changes
from qmix.data.episode_batch import EpisodeBatch
from qmix.data.replay_buffer import ReplayBuffer
from qmix.envs.matrix import TabularGame
from qmix.envs.registry import env_spec, make_env, make_vector_env
from qmix.evaluate import format_tables, q_tables
from qmix.files import (
    BEST_MODEL_NAME,
    CHECKPOINT_NAME,
    CONFIG_NAME,
    CURVE_NAME,
    ERROR_LOG_NAME,
    METADATA_NAME,
    METRICS_NAME,
    MODEL_NAME,
    Q_TABLES_NAME,
    Q_TABLES_PLOT_NAME,
    TENSORBOARD_NAME,
    atomic_write_text,
)
from qmix.learners import DivergenceError, Learner, build_learner
from qmix.learners.q import QLearner
from qmix.logging import (
    MetricsWriter,
    Progress,
    capped_updates_left,
    eta_seconds,
    read_metrics,
    run_metadata,
    tell,
    write_json,
)
from qmix.policy.exploration import LinearSchedule
from qmix.run import (
    Run,
    check_run_id,
    read_run_config,
    read_run_metadata,
    require_trusted_env,
)
from qmix.rundir import (
    RunInterrupted,
    RunLock,
    create_run_dir,
    holds_run,
    remove_stale_temps,
)
from qmix.runner import EpisodeRunner, RolloutStats
from qmix.seeding import TEST_STREAM, TRAIN_STREAM, episode_seeds, seed_stream
from qmix.types import EnvInfo


def updates_due(
    per_collect: int, credit: float, *, per_step: bool, capped: bool
) -> tuple[int, float]:
    """The updates to make after a collection call, and the credit left for the next.

    ``credit`` is what the update rate owes so far (the rate times the env steps collected).
    Per step: the whole updates it owes, the fraction carried over. Capped: ``per_collect``,
    but no more than it owes; the fraction carries over only while the cap binds (an allowance
    unused on long episodes is not saved up for a burst on short ones). Otherwise
    ``per_collect``.
    """
    owed = int(credit)
    if per_step or (capped and owed <= per_collect):
        return owed, credit - owed
    return per_collect, 0.0


def run_name(cfg: Config) -> str:
    """``<algo>_<task>_seed<seed>``, with characters unsafe in file names replaced."""
    task = re.sub(r"[^A-Za-z0-9_.-]+", "-", cfg.task)  # module:factory tasks have a colon
    return f"{cfg.algo}_{task}_seed{cfg.seed}"


def evaluate_greedy(
    runner: Collector, cfg: Config, episodes: int, first_index: int
) -> RolloutStats:
    """``episodes`` greedy episodes (epsilon None) from the test seed stream."""
    _, stats = runner.run(episode_seeds(cfg.seed, TEST_STREAM, first_index, episodes), None)
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
    update_credit: float = 0.0  # updates owed by updates_per_env_step, not yet made


@contextlib.contextmanager
def _error_log(run_dir: Path) -> Iterator[None]:
    """Save the traceback of an exception that stops the run (and a worker's or an
    environment's own traceback) to ``run_dir/error.log`` before it propagates."""
    try:
        yield
    except Exception as err:
        text = traceback.format_exc()
        details = getattr(err, "details", "")
        if details:
            text += f"\nThe environment's own traceback:\n{details}"
        with contextlib.suppress(OSError):  # a full disk must not hide the real error
            atomic_write_text(run_dir / ERROR_LOG_NAME, text)
            err.error_log = run_dir / ERROR_LOG_NAME  # type: ignore[attr-defined]  # for the CLI
        raise


class _StopSignals:
    """While active, SIGINT and SIGTERM ask the loop to stop after its current step (main
    thread only; elsewhere signals keep their handlers). A second signal stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # asked twice: stop now, without a checkpoint
            raise KeyboardInterrupt
        self.signum = signum
        tell(
            f"\nqmix: {signal.Signals(signum).name}: stopping after this step and saving a "
            "checkpoint (send it again to stop at once, without saving)"
        )

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


@dataclass
class _Opened:
    """A run directory held by this process, and what a resume found in it."""

    run_dir: Path
    lock: RunLock
    run_id: str
    checkpoint: dict[str, Any] | None = None
    config_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def train(cfg: Config, run_dir: Path | None = None, progress: bool = True) -> Run:
    """Train ``cfg`` to its budget and return the finished :class:`Run`.

    SIGINT (Ctrl-C) and SIGTERM stop the run after its current step with a checkpoint, and
    raise :class:`RunInterrupted`; continue it with :func:`resume`.

    Args:
        cfg: a validated configuration (see :func:`qmix.config.make_config`).
        run_dir: where to write (created if missing; it may not hold a run); a new folder
            under ``cfg.runs_dir`` by default.
        progress: print progress lines and the final tables.

    Raises:
        ConfigError: the task cannot be built from ``cfg``, the machine cannot run it, or
            ``run_dir`` holds a run or is in use (nothing is written).
        OSError: the run directory cannot be written (disk full, read-only).
        EnvError: the environment raised, hung or returned non-finite or misshapen output.
        DivergenceError: the loss, Q-values or gradient stopped being finite (the last
            checkpoint is kept).
    """
    return _train(cfg, run_dir, progress, mode="new")


def resume(
    run_dir: Path,
    progress: bool = True,
    total_env_steps: int | None = None,
    *,
    trust_env: bool = False,
    accept_config_change: bool = False,
) -> Run:
    """Continue the run in ``run_dir`` from its last checkpoint, exactly as if never stopped.

    Args:
        run_dir: a run directory with ``config.yaml`` and ``checkpoint.pt``.
        progress: print progress lines.
        total_env_steps: a larger budget to train on to (default: the run's own).
        trust_env: build a ``module:factory`` environment named by the run's config (that
            imports and runs the module's code: only for run directories you trust).
        accept_config_change: continue although ``config.yaml`` was edited since the
            checkpoint was written; the change is recorded in ``metadata.json``.

    Raises:
        CheckpointError: no usable checkpoint, or the files disagree with it (left as they are).
        ConfigError: the config is unreadable, was edited, or names an untrusted environment.
        RunDirBusy: another process is writing to ``run_dir``.
    """
    return _train(
        None,
        Path(run_dir),
        progress,
        mode="resume",
        trust_env=trust_env,
        accept_config_change=accept_config_change,
        total_env_steps=total_env_steps,
    )


def restart(run_dir: Path, progress: bool = True, *, trust_env: bool = False) -> Run:
    """Start the run in ``run_dir`` again from scratch, in place, with its saved config.

    Only for a run stopped before its first checkpoint (there is nothing to resume): its
    metrics, TensorBoard events and model files are removed first.

    Raises:
        ConfigError: ``run_dir`` has a checkpoint (resume it instead), or see :func:`resume`.
    """
    return _train(None, Path(run_dir), progress, mode="restart", trust_env=trust_env)


def _train(
    cfg: Config | None,
    run_dir: Path | None,
    progress: bool,
    mode: Literal["new", "resume", "restart"],
    trust_env: bool = True,
    accept_config_change: bool = False,
    total_env_steps: int | None = None,
) -> Run:
    # ---- set-up: the run directory first when it exists (locked), so two processes never
    # ---- both read it; a new one only after everything that can fail on the config.
    # SIGINT / SIGTERM from here on stop the run after its first step, with a checkpoint.
    with _StopSignals() as stop:
        opened: _Opened | None = None
        if mode != "new":
            assert run_dir is not None
            opened = _open_existing(run_dir, mode, accept_config_change)
        try:
            if opened is not None:
                cfg = read_run_config(opened.run_dir)
                if total_env_steps is not None:
                    cfg = dataclasses.replace(cfg, total_env_steps=total_env_steps)
                require_trusted_env(cfg, trust_env, opened.run_dir)
            assert cfg is not None
            return _run(cfg, run_dir, progress, opened, stop)
        finally:
            if opened is not None:
                opened.lock.release()


def _open_existing(
    run_dir: Path, mode: Literal["resume", "restart"], accept_config_change: bool
) -> _Opened:
    """Lock an existing run directory and check its files against its checkpoint."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a run directory")
    lock = RunLock(run_dir)
    try:
        remove_stale_temps(run_dir)  # a kill during an atomic write; we hold the lock
        cfg = read_run_config(run_dir)
        meta = read_run_metadata(run_dir)
        has_checkpoint = (run_dir / CHECKPOINT_NAME).exists()
        if mode == "restart":
            if has_checkpoint:
                raise ConfigError(
                    f"{run_dir} has a checkpoint: continue it with qmix train --resume {run_dir}"
                )
            return _Opened(run_dir, lock, run_id=uuid.uuid4().hex)
        if not has_checkpoint:
            raise CheckpointError(
                f"{run_dir} has no {CHECKPOINT_NAME}: it stopped before its first checkpoint; "
                f"start it again in place with: qmix train --restart {run_dir}"
            )
        checkpoint = load_checkpoint(run_dir / CHECKPOINT_NAME)
        check_run_id(run_dir / CHECKPOINT_NAME, checkpoint, meta)
        run_id = str(meta["run_id"])
        changes = config_changes(checkpoint.get("config", {}), cfg.to_dict())
        if changes and not accept_config_change:
            listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items())
            raise ConfigError(
                f"{run_dir / 'config.yaml'} differs from the config its checkpoint was trained "
                f"with ({listed}): undo the edit, or resume with --accept-config-change "
                "(recorded in metadata.json)"
            )
        _check_metrics_file(run_dir, int(checkpoint["loop"]["metric_rows"]))
        return _Opened(run_dir, lock, run_id, checkpoint, changes)
    except BaseException:
        lock.release()
        raise


def _check_metrics_file(run_dir: Path, expected_rows: int) -> None:
    """The checkpoint keeps ``expected_rows`` metric rows: they must all be there."""
    path = run_dir / METRICS_NAME
    if not path.exists():
        if expected_rows == 0:
            return  # killed after the checkpoint, before the first row: nothing is missing
        raise CheckpointError(
            f"{path} is missing but the checkpoint expects {expected_rows} rows: restore it "
            f"(or start a new run); nothing was changed"
        )
    rows = read_metrics(run_dir)
    if len(rows) < expected_rows:
        raise CheckpointError(
            f"{path} holds {len(rows)} of the {expected_rows} rows its checkpoint expects "
            "(shortened or replaced?): restore it (or start a new run); nothing was changed"
        )


def _check_device(cfg: Config) -> None:
    """The learning device exists (checked before any network is put on it)."""
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device={cfg.device} but this torch sees no CUDA device "
            f"(torch {torch.__version__}); use device=cpu"
        )


def _check_memory(cfg: Config, info: EnvInfo, on_policy: bool) -> None:
    """The episodes the run holds fit in this machine's memory, checked before anything is
    written (an on-policy learner keeps no replay buffer)."""
    episode = EpisodeBatch.nbytes_per_episode(info)
    replay = 0 if on_policy else cfg.buffer_capacity_episodes + cfg.batch_size_episodes
    episodes = replay + 2 * cfg.n_envs
    needed = episodes * episode
    total = _physical_memory()
    if total is not None and needed > 0.8 * total:
        raise ConfigError(
            f"the replay buffer ({cfg.buffer_capacity_episodes} episodes of "
            f"{episode / 2**10:.1f} KiB) and {cfg.n_envs} environments' episodes need "
            f"{needed / 2**30:.1f} GiB of memory; this machine has {total / 2**30:.1f} GiB: "
            "lower buffer_capacity_episodes or n_envs"
        )


def _physical_memory() -> int | None:
    """Bytes of physical memory (``None`` where the platform does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _open_new(cfg: Config, run_dir: Path | None) -> _Opened:
    """Create (or take an empty) run directory and lock it.

    A directory that another process holds is left alone: it raises :class:`RunDirBusy`
    before anything is written, and nothing is removed (it is not ours to remove).
    """
    if run_dir is None:
        run_dir = create_run_dir(
            Path(cfg.runs_dir) / f"{run_name(cfg)}_{datetime.now():%Y%m%d-%H%M%S}"
        )
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir)
    if holds_run(run_dir):
        lock.release()
        raise ConfigError(
            f"{run_dir} already holds a run: continue it with --resume, or choose another run dir"
        )
    return _Opened(run_dir, lock, run_id=uuid.uuid4().hex)


def _start_files(cfg: Config, opened: _Opened, mode: str, env_steps: int) -> None:
    """config.yaml and metadata.json: written for a new run, updated by a resume or restart
    only once its set-up has succeeded."""
    run_dir = opened.run_dir
    meta = read_run_metadata(run_dir)
    if mode == "resume":
        entry: dict[str, Any] = {**run_metadata(cfg.seed), "from_env_steps": env_steps}
        if opened.config_changes:
            entry["config_changes"] = {k: list(v) for k, v in opened.config_changes.items()}
        old = read_run_config(run_dir)
        if old.total_env_steps != cfg.total_env_steps:
            entry["total_env_steps"] = cfg.total_env_steps
        meta.setdefault("resumed", []).append(entry)
    else:
        history: list[Any] = []
        if mode == "restart":  # what the stopped attempt left, except its config, goes
            outputs = (METRICS_NAME, MODEL_NAME, BEST_MODEL_NAME, ERROR_LOG_NAME, CURVE_NAME)
            for name in (*outputs, Q_TABLES_NAME, Q_TABLES_PLOT_NAME):
                (run_dir / name).unlink(missing_ok=True)
            shutil.rmtree(run_dir / TENSORBOARD_NAME, ignore_errors=True)
            history = [*meta.get("restarted", []), {k: meta.get(k) for k in ("run_id", "started")}]
        meta = {**run_metadata(cfg.seed), "run_id": opened.run_id}
        if history:
            meta["restarted"] = history  # the attempts before this one
    atomic_write_text(run_dir / CONFIG_NAME, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    write_json(run_dir / METADATA_NAME, meta)


def _run(
    cfg: Config, run_dir: Path | None, progress: bool, opened: _Opened | None, stop: _StopSignals
) -> Run:
    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    rng = torch.Generator().manual_seed(cfg.seed)  # exploration draws and replay sampling
    mode = "new" if opened is None else ("resume" if opened.checkpoint else "restart")
    checkpoint = opened.checkpoint if opened is not None else None
    try:
        envs = make_vector_env(
            cfg.env, cfg.env_args, cfg.n_envs, cfg.env_workers, cfg.worker_timeout_seconds
        )
    except ValueError as err:  # unknown task, bad env_args: the user's to fix, nothing written
        raise ConfigError(str(err)) from err
    try:
        info = envs.env_info()
        _check_device(cfg)
        learner = build_learner(cfg, info)
        _check_memory(cfg, info, learner.on_policy)
        runner = EpisodeRunner(envs, learner.controller, name=cfg.env)
        buffer = None if learner.on_policy else ReplayBuffer(cfg.buffer_capacity_episodes, info)
        state = LoopState()
        if checkpoint is not None:
            assert run_dir is not None
            try:
                learner.load_state_dict(checkpoint["learner"])
                if buffer is not None:
                    buffer.load_state_dict(checkpoint["buffer"])
                rng.set_state(checkpoint["rng"]["train"])
                torch.set_rng_state(checkpoint["rng"]["torch"])
                state = LoopState(**checkpoint["loop"])
            except (KeyError, TypeError, ValueError, RuntimeError) as err:
                raise CheckpointError(
                    f"checkpoint in {run_dir} does not fit this run ({err}); it was left untouched"
                ) from err
        if opened is None:
            opened = _open_new(cfg, run_dir)
        try:
            _start_files(cfg, opened, mode, state.env_steps)
            with _error_log(opened.run_dir):
                training = _Training(
                    cfg, opened, progress, info, learner, runner, buffer, state, rng
                )
                return _loop(cfg, stop, training)
        finally:
            if mode == "new":
                opened.lock.release()
    finally:
        envs.close()


class _Training:
    """One training process's loop state and steps: what :func:`_loop` calls, top to bottom.

    Args:
        cfg: the run's config.
        opened: the locked run directory, its run id and (on resume) its checkpoint.
        progress: print a progress line and the final report.
        info: the task's sizes.
        learner, runner, buffer, state, rng: built (and restored) by :func:`_run`; the runner
            is any :class:`~qmix.collectors.Collector`; no buffer for an on-policy learner.
    """

    def __init__(
        self,
        cfg: Config,
        opened: _Opened,
        progress: bool,
        info: EnvInfo,
        learner: Learner,
        runner: Collector,
        buffer: ReplayBuffer | None,
        state: LoopState,
        rng: torch.Generator,
    ) -> None:
        self.cfg, self.run_dir, self.progress = cfg, opened.run_dir, progress
        self.learner, self.runner, self.buffer = learner, runner, buffer
        self.state, self.rng = state, rng
        self.fresh: EpisodeBatch | None = None  # on-policy: the episodes just played
        self.last_batch: EpisodeBatch | None = None  # this loop step's last update's batch
        # updates per env step (a constant, or a linear ramp up to it; or the cap on
        # updates_per_collect); unused when 0
        ramp = cfg.updates_per_env_step_anneal_env_steps
        rate = cfg.updates_per_env_step or cfg.updates_per_env_step_max
        self.update_rate = LinearSchedule(
            cfg.updates_per_env_step_start if ramp > 0 else rate, rate, ramp
        )
        # the learning rates' factor (1 throughout unless lr_anneal_env_steps > 0)
        self.lr_scale = LinearSchedule(1.0, cfg.lr_finish_fraction, cfg.lr_anneal_env_steps)
        # this process's time in updates and its counts at its start, for the ETA
        self.learn_seconds, self.first_updates = 0.0, state.updates
        self.first_steps, self.earlier_seconds = state.env_steps, state.wall_seconds
        resumed = opened.checkpoint is not None
        self.metrics = MetricsWriter(
            self.run_dir / METRICS_NAME,
            self.run_dir / TENSORBOARD_NAME if cfg.tensorboard else None,
            keep_rows=state.metric_rows if resumed else None,
            resume_step=state.env_steps if resumed else None,
        )
        label = f"{cfg.algo} {cfg.task} seed {cfg.seed}"
        self.bar = (
            Progress(label, cfg.total_env_steps, first_step=state.env_steps) if progress else None
        )
        if progress:
            verb = f"resuming from {state.env_steps} env steps in" if resumed else "writing to"
            resume = f"qmix train --resume {self.run_dir}"
            print(f"{verb} {self.run_dir} (continue a stopped run: {resume})")
        self.started = time.perf_counter() - state.wall_seconds
        # run id, config and task sizes in every file: qmix.load builds no env
        sizes = asdict(info)
        self.identity = {"run_id": opened.run_id, "config": cfg.to_dict(), "env_info": sizes}

    # -- collect and store ---------------------------------------------------------------
    def store(self, collected: tuple[EpisodeBatch, RolloutStats]) -> None:
        """Put collected episodes in replay (on-policy: hold them for the next update only)
        and count them."""
        batch, stats = collected
        state = self.state
        cfg = self.cfg
        batch = batch.for_learning(cfg.reward_scale, cfg.time_limit == "terminal")
        if self.buffer is not None:
            self.buffer.insert(batch)
            state.update_credit += self.update_rate.value(state.env_steps) * stats.env_steps
        else:
            self.fresh = batch
        state.env_steps += stats.env_steps
        state.episodes += len(stats.returns)
        state.recent_returns = (state.recent_returns + stats.returns)[-100:]

    def milestones(self) -> tuple[bool, bool, bool]:
        """Whether the budget is spent, a test is due, a checkpoint is due."""
        cfg, state = self.cfg, self.state
        interval = cfg.checkpoint_interval_env_steps
        return (
            state.env_steps >= cfg.total_env_steps,
            cfg.test_episodes > 0
            and state.env_steps - state.last_test >= cfg.test_interval_env_steps,
            interval > 0 and state.env_steps - state.last_checkpoint >= interval,
        )

    # -- sample and learn; targets -------------------------------------------------------
    def learn(self) -> None:
        """Off-policy: ``updates_per_collect`` updates on replay samples, or as many as
        ``updates_per_env_step`` owes for the steps collected (once the buffer can give
        samples: steps before that are owed nothing), or ``updates_per_collect`` capped at
        what ``updates_per_env_step_max`` allows for them. On-policy: one update on the episodes
        just played, which are then dropped (never reused)."""
        cfg, state = self.cfg, self.state
        self.last_batch = None
        if cfg.lr_anneal_env_steps > 0:
            self.learner.scale_learning_rates(self.lr_scale.value(state.env_steps))
        if self.buffer is None:
            batch, self.fresh = self.fresh, None
            if batch is not None:
                self._update(batch.to(cfg.device))
            return
        if not self.buffer.can_sample(cfg.batch_size_episodes):
            state.update_credit = 0.0
            return
        updates, state.update_credit = updates_due(
            cfg.updates_per_collect,
            state.update_credit,
            per_step=cfg.updates_per_env_step > 0,
            capped=cfg.updates_per_env_step_max > 0,
        )
        start = time.perf_counter()
        for _ in range(updates):
            self._update(self.buffer.sample(cfg.batch_size_episodes, self.rng).to(cfg.device))
        self.learn_seconds += time.perf_counter() - start

    def diagnose(self) -> None:
        """The learner's figures too costly for every update (QMIX's ``mixer_gain``), of the
        networks on the batch of this loop step's last update, join that update's figures
        (which the checkpoint keeps, so a resumed run writes the same rows)."""
        if self.last_batch is not None:
            learned = self.learner.diagnostics(self.last_batch)
            self.state.last_learn = {**self.state.last_learn, **learned}

    def _update(self, batch: EpisodeBatch) -> None:
        state = self.state
        try:
            learned = self.learner.train(batch)
        except DivergenceError as err:
            raise self._diverged(err) from err
        state.updates += 1
        state.last_loss = learned["loss"]
        state.last_learn = learned
        self.last_batch = batch

    def _diverged(self, err: DivergenceError) -> DivergenceError:
        state = self.state
        kept = (
            f"the last good checkpoint (env step {state.last_checkpoint}) is kept"
            if (self.run_dir / CHECKPOINT_NAME).exists()
            else "no checkpoint had been written"
        )
        return DivergenceError(
            f"training diverged at env step {state.env_steps} (update {state.updates + 1}): "
            f"{err}; {kept}; start a new run with a lower lr (or a smaller grad_norm_clip)"
        )

    def update_targets(self) -> None:
        """Target copies when the learner's schedule says so (the episode count of the last
        one is kept here, with the loop's counters)."""
        state = self.state
        if self.learner.update_targets(state.episodes, state.last_target_update):
            state.last_target_update = state.episodes

    # -- evaluate greedily ---------------------------------------------------------------
    def test(self) -> None:
        """Greedy episodes from the test stream; a row, and the networks if the best so far."""
        cfg, state = self.cfg, self.state
        test = evaluate_greedy(self.runner, cfg, cfg.test_episodes, state.test_episodes_run)
        state.test_episodes_run += cfg.test_episodes
        state.last_test = state.env_steps
        state.last_test_return = float(np.mean(test.returns))
        row: dict[str, Any] = {
            "env_steps": state.env_steps,
            "episodes": state.episodes,
            "test_return": state.last_test_return,
            "test_length": float(np.mean(test.lengths)),
            "wall_seconds": time.perf_counter() - self.started,  # time to a threshold
        }
        won = [i["battle_won"] for i in test.infos if "battle_won" in i]
        if won:
            row["test_win_rate"] = state.last_win_rate = float(np.mean(won))
        self.metrics.write(row)
        # Keep the networks of the best test so far (as SB3's EvalCallback does): chosen on
        # the test seed stream, so `qmix eval --best` scores them on fresh seeds.
        score = row.get("test_win_rate", row["test_return"])
        if state.best_test_score is None or score > state.best_test_score:
            state.best_test_score, state.best_test_env_steps = score, state.env_steps
            best = {"env_steps": state.env_steps, "score": score}
            self.save_networks(BEST_MODEL_NAME, best=best)

    # -- log -----------------------------------------------------------------------------
    def log(self, epsilon: float) -> None:
        """A training row, and the progress line."""
        state = self.state
        state.last_log = state.env_steps
        train_return = float(np.mean(state.recent_returns))
        self.metrics.write(
            {
                "env_steps": state.env_steps,
                "episodes": state.episodes,
                "updates": state.updates,
                "train_return": train_return,
                "epsilon": epsilon,
                "loss": state.last_loss,
                **{k: v for k, v in state.last_learn.items() if k != "loss"},
                **({} if self.buffer is None else {"buffer_episodes": len(self.buffer)}),
                "wall_seconds": time.perf_counter() - self.started,
                "eta_seconds": self.eta(),
            }
        )
        if self.bar is not None:
            figures = {
                "return": train_return,
                "test": state.last_test_return,
                "win": state.last_win_rate,
                "eps": epsilon,
                "loss": state.last_loss,
            }
            self.bar.update(state.env_steps, state.episodes, figures, eta=self.eta())

    def eta(self) -> float:
        """Seconds left, as the progress line shows them: from this process's time per env
        step and, where the updates to come can be foreseen, per update: a fixed or ramped
        update rate knows them; a capped per-episode rate estimates them
        (:func:`capped_updates_left`); plain updates per collection call cannot."""
        cfg, state = self.cfg, self.state
        steps_done = state.env_steps - self.first_steps
        updates_done = state.updates - self.first_updates
        steps_left = max(cfg.total_env_steps - state.env_steps, 0)
        updates_left: float | None = None
        if self.buffer is not None and cfg.updates_per_env_step > 0:
            updates_left = self.update_rate.total(state.env_steps, cfg.total_env_steps)
        elif self.buffer is not None and cfg.updates_per_env_step_max > 0:
            rate = updates_done / max(steps_done, 1)
            updates_left = capped_updates_left(rate, cfg.updates_per_env_step_max, steps_left)
        return eta_seconds(
            elapsed=time.perf_counter() - self.started - self.earlier_seconds,
            learn_seconds=self.learn_seconds,
            steps_done=steps_done,
            updates_done=updates_done,
            steps_left=steps_left,
            updates_left=updates_left,
        )

    # -- checkpoints ---------------------------------------------------------------------
    def save(self) -> None:
        """The full training state, atomically."""
        state = self.state
        state.last_checkpoint = state.env_steps
        state.metric_rows = len(self.metrics.rows)
        state.wall_seconds = time.perf_counter() - self.started
        save_checkpoint(
            self.run_dir / CHECKPOINT_NAME,
            {
                **self.identity,
                "loop": dataclasses.asdict(state),
                "learner": self.learner.state_dict(),
                "buffer": {} if self.buffer is None else self.buffer.state_dict(),
                "rng": {"train": self.rng.get_state(), "torch": torch.get_rng_state()},
            },
        )

    def save_networks(self, name: str, **extra: Any) -> None:
        """The networks alone (no optimiser, buffer or counters), for evaluation."""
        networks = {"networks": self.learner.state_dict()["networks"]}
        save_checkpoint(self.run_dir / name, {**self.identity, "learner": networks, **extra})

    def close(self) -> None:
        """End the progress line and the metrics writer."""
        if self.bar is not None:
            self.bar.close()
        self.metrics.close()

    # -- finish ----------------------------------------------------------------------------
    def finish(self) -> Run:
        """Final networks, tables of tabular games, the curve and the report."""
        cfg, run_dir, state = self.cfg, self.run_dir, self.state
        self.close()
        self.save_networks(MODEL_NAME)
        title = f"{cfg.algo} on {cfg.task}, seed {cfg.seed}"
        tables = None
        game = None if env_spec(cfg.env).vectorised else make_env(cfg.env, cfg.env_args)
        if isinstance(game, TabularGame):
            tables = tabular_report(self.learner, self.runner, cfg, game)
            (run_dir / Q_TABLES_NAME).write_text(json.dumps(tables, indent=2))
            if tables["states"]:
                _try_heatmaps(run_dir, tables, title)
            if self.progress:
                print(format_tables(tables["states"], tables["greedy"]))
        curve = _try_plot(run_dir, self.metrics.rows, title)
        if self.progress:
            if curve is not None:
                print(f"learning curve: {curve}")
            if state.best_test_score is not None:
                print(
                    f"best test {'win rate' if state.last_win_rate is not None else 'return'} "
                    f"{state.best_test_score:.3f} at {state.best_test_env_steps} env steps: "
                    f"{run_dir / BEST_MODEL_NAME} (qmix eval {run_dir} --best)"
                )
            print(f"run directory: {run_dir}")
        rows = self.metrics.rows
        return Run(run_dir=run_dir, config=cfg, metrics=rows, learner=self.learner, tables=tables)


def _loop(cfg: Config, stop: _StopSignals, training: _Training) -> Run:
    """The training loop, top to bottom: collect -> store -> learn -> targets -> test -> log
    -> checkpoint, in a locked run directory whose files are written."""
    state, runner, rng = training.state, training.runner, training.rng
    learner = training.learner
    # Checkpoints are taken with no episode in flight, so episodes continue from there.
    train_seeds = seed_stream(cfg.seed, TRAIN_STREAM, state.episodes)
    while state.env_steps < cfg.total_env_steps:
        # A stop asked for during a step is taken at the top of the next one, which then
        # ends like a step with a checkpoint due: episodes in flight are finished first.
        stopping = stop.signum
        # ---- collect and store, acting with the learner's exploration rate ----------------
        epsilon = learner.exploration(state.env_steps)
        if learner.on_policy:  # exactly n_envs episodes, all of them played by this policy
            seeds = list(itertools.islice(train_seeds, cfg.n_envs))
            training.store(runner.run(seeds, epsilon, rng))
        else:  # n_envs finished episodes; unfinished ones carry on into the next call
            training.store(runner.collect(cfg.n_envs, train_seeds, epsilon, rng))
            if any(training.milestones()) or stopping:  # tests and checkpoints need idle envs
                training.store(runner.drain(epsilon, rng))
        finished, test_due, save_due = training.milestones()  # the drain may cross the budget
        log_due = state.env_steps - state.last_log >= cfg.log_interval_env_steps or finished

        # ---- learn (replay samples, or the episodes just played); targets as scheduled -----
        training.learn()
        if log_due:  # the learner's costlier figures, for the row written below
            training.diagnose()
        training.update_targets()

        # ---- evaluate greedily ------------------------------------------------------------
        if cfg.test_episodes > 0 and (test_due or finished):
            training.test()

        # ---- log ---------------------------------------------------------------------------
        if log_due:
            training.log(epsilon)

        # ---- checkpoint: periodic, final, and on SIGINT / SIGTERM, atomically -------------
        if finished or save_due or stopping:
            training.save()
        if stopping and not finished:
            training.close()
            raise RunInterrupted(stopping, training.run_dir, state.env_steps)

    # ---- save and report --------------------------------------------------------------------
    return training.finish()


def tabular_report(
    learner: Learner, runner: Collector, cfg: Config, game: TabularGame
) -> dict[str, Any]:
    """Learned tables of every state (a Q-learner's; none for other learners) plus the greedy
    joint actions and return."""
    tables: dict[str, Any] = {}
    if isinstance(learner, QLearner):
        tables = q_tables(learner.controller, learner.mixer, game, cfg.mixer_input, cfg.gamma)
    batch, stats = runner.run(episode_seeds(cfg.seed, TEST_STREAM, 0, 1), None)
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

    return plot_curves([("test return", rows)], run_dir / CURVE_NAME, title)


def _try_heatmaps(run_dir: Path, tables: dict[str, Any], title: str) -> Path | None:
    """Save ``q_tables.png`` (learned Q_tot next to the true values) when matplotlib is there."""
    if not _has_matplotlib():
        return None
    from qmix.render import plot_q_tables

    return plot_q_tables(tables, run_dir / Q_TABLES_PLOT_NAME, title=title)
