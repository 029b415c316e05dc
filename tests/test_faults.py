"""Nothing trains on garbage, and every error is one clear line (issue 13).

Every fault of ``tests.faulty_env`` through the in-process VectorEnv and the runner, the
worker faults through subprocesses, non-finite output of vectorised simulators (controller and
acting paths), and a diverging learner that must leave its weights as they were.
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import torch

from qmix.envs.base import EnvError, EnvOutputError, PlayedSteps, VectorStep
from qmix.envs.registry import make_vector_env
from qmix.envs.vector import EnvWorkerError, InProcessVectorEnv, SubprocessVectorEnv
from qmix.learners import DivergenceError
from qmix.learners.q import QLearner
from qmix.networks.agents import AgentNetwork
from qmix.networks.mixers import QMixer
from qmix.policy.controller import AgentController, agent_input_dim
from qmix.runner import EpisodeRunner
from qmix.types import AgentWeights, EnvInfo
from tests.faulty_env import FaultyEnv

TASK = "tests.faulty_env:make"
ADVICE = f": fix the environment; qmix check-env {TASK} shows the contract$"


def _controller(info: EnvInfo) -> AgentController:
    torch.manual_seed(0)
    dim = agent_input_dim(info.obs_dim, info.n_actions, info.n_agents, True, True)
    agent = AgentNetwork(dim, info.n_actions, info.n_agents, 16, True)
    return AgentController(agent, info.n_actions, last_action=True, agent_id=True)


def _play(envs, name: str = TASK, episodes: int = 4, close: bool = True) -> None:
    try:
        runner = EpisodeRunner(envs, _controller(envs.env_info()), name=name)
        runner.run(list(range(episodes)), epsilon=1.0)
    finally:
        if close:  # gives back the SIGALRM handler, which the tests check
            envs.close()


def _one_line(err: BaseException) -> str:
    message = str(err)
    assert "\n" not in message
    return message


# -- in process: every fault, through make_vector_env (the task's name) and the runner --------


@pytest.mark.parametrize(
    "fault, message",
    [
        (
            "nan_obs",
            r"returned a non-finite observation \(nan\) for agent 1 in step\(\) \(env 0\)",
        ),
        (
            "inf_obs",
            r"returned a non-finite observation \(inf\) for agent 1 in step\(\) \(env 0\)",
        ),
        ("nan_state", r"returned a non-finite state \(nan\) in step\(\) \(env 0\)"),
        (
            "nan_reward",
            r"returned a non-finite reward \(nan\) in step\(\) \(env 0\)",
        ),
        (
            "inf_reward",
            r"returned a non-finite reward \(inf\) in step\(\) \(env 0\)",
        ),
        (
            "obs_shape",
            r"returned observations of shape \(1, 4\) after step\(\) \(env 0\), "
            r"expected \(2, 4\) \[N, O\]",
        ),
    ],
)
def test_bad_output_is_refused_in_process(fault: str, message: str) -> None:
    envs = make_vector_env(TASK, {"fault": fault}, num_envs=2)
    with pytest.raises(EnvOutputError) as info:
        _play(envs)
    text = _one_line(info.value)
    assert text.startswith(f"environment '{TASK}' ")
    assert info.value.details == ""
    assert re.search(message + ADVICE, text), text


def test_bad_output_at_reset_names_reset() -> None:
    envs = InProcessVectorEnv(lambda: FaultyEnv("nan_obs", at_step=0), 1, name=TASK)
    with pytest.raises(EnvOutputError, match=r"observation \(nan\) for agent 1 in reset\(\)"):
        _play(envs)


@pytest.mark.parametrize(
    "fault, method",
    [("raise_step", "step()"), ("raise_reset", "reset()")],
)
def test_an_environment_that_raises_gives_one_line_and_its_traceback(
    fault: str, method: str
) -> None:
    envs = make_vector_env(TASK, {"fault": fault}, num_envs=2)
    with pytest.raises(EnvError) as info:
        _play(envs)
    assert type(info.value) is EnvError
    assert _one_line(info.value) == (
        f"environment '{TASK}' raised ValueError in {method}: injected fault"
    )
    assert isinstance(info.value.__cause__, ValueError)
    # the environment's own traceback, down to the line that raised
    assert "faulty_env.py" in info.value.details
    assert 'raise ValueError("injected fault")' in info.value.details


def test_a_factory_that_raises_gives_env_error() -> None:
    for workers in (0, 1):
        with pytest.raises(EnvError) as info:
            make_vector_env(TASK, {"fault": "raise_init"}, num_envs=2, workers=workers)
        assert _one_line(info.value) == (
            f"environment '{TASK}' raised RuntimeError in make(): injected fault"
        )
        assert 'raise RuntimeError("injected fault")' in info.value.details


def test_bad_env_args_stay_config_errors() -> None:
    # the user's config, not the environment's failure: ValueError, as before
    with pytest.raises(ValueError, match="rejected env_args"):
        make_vector_env("two_step", {"size": 3}, 1)
    with pytest.raises(ValueError, match="unknown fault"):
        make_vector_env(TASK, {"fault": "typo"}, 1)


def test_unnamed_vector_env_says_the_environment() -> None:
    envs = InProcessVectorEnv(lambda: FaultyEnv("raise_step"), 1)
    with pytest.raises(EnvError, match=r"^the environment raised ValueError in step\(\)"):
        _play(envs, name="environment")


class _Interrupted(FaultyEnv):
    def step(self, actions: np.ndarray):
        raise KeyboardInterrupt


def test_keyboard_interrupt_passes_through_untouched() -> None:
    envs = InProcessVectorEnv(_Interrupted, 1, name=TASK)
    with pytest.raises(KeyboardInterrupt):
        _play(envs)


def _sentinel(signum: int, frame: object) -> None:
    """A SIGALRM handler of the test's own, which the env must give back on close."""


@pytest.fixture
def sentinel_handler() -> Iterator[None]:
    original = signal.signal(signal.SIGALRM, _sentinel)
    yield
    signal.signal(signal.SIGALRM, original)


@pytest.mark.usefixtures("sentinel_handler")
def test_a_hung_step_in_process_is_stopped_by_the_timeout() -> None:
    envs = make_vector_env(TASK, {"fault": "hang_step"}, num_envs=1, timeout=1.0)
    start = time.monotonic()
    # should the timeout break, fail within 20 s (a watchdog thread, not SIGALRM; pytest's
    # capture swallows its traceback, but the run stops with exit code 1)
    faulthandler.dump_traceback_later(20, exit=True)
    try:
        with pytest.raises(EnvError) as info:
            _play(envs, close=False)
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert time.monotonic() - start < 5
    assert _one_line(info.value) == (
        f"environment '{TASK}': step() did not return within 1 s (hung?); check the task, "
        "raise worker_timeout_seconds, or run it in workers with env_workers=K"
    )
    envs.close()
    assert signal.getsignal(signal.SIGALRM) is _sentinel  # the previous handler is back


@pytest.mark.usefixtures("sentinel_handler")
def test_the_timeout_leaves_healthy_runs_and_the_alarm_alone() -> None:
    envs = make_vector_env(TASK, {}, num_envs=2, timeout=1.0)
    _play(envs, episodes=6, close=False)
    envs.close()
    assert signal.getsignal(signal.SIGALRM) is _sentinel
    for thread in threading.enumerate():  # the watchdog stops with the last close
        if thread.name == "qmix-env-watchdog":
            thread.join(timeout=2.0)
            assert not thread.is_alive()


def test_someone_elses_alarm_still_reaches_their_handler() -> None:
    fired: list[int] = []

    def theirs(signum: int, frame: object) -> None:
        fired.append(signum)

    before = signal.signal(signal.SIGALRM, theirs)
    envs = make_vector_env(TASK, {}, num_envs=1, timeout=1.0)
    try:
        _play(envs, close=False)  # installs our handler: it passes on alarms not its own
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        time.sleep(0.1)
        assert fired == [signal.SIGALRM]
        # their timer (as pytest-timeout's signal method arms one): left alone, still theirs
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        _play(envs, close=False)
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 20.0 < left <= 30.0
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        time.sleep(0.1)
        assert fired == [signal.SIGALRM] * 2
        envs.close()
        assert signal.getsignal(signal.SIGALRM) is theirs
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


# -- worker processes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault, message",
    [
        ("raise_step", r"worker 0 failed: ValueError: injected fault$"),
        ("crash_step", r"worker 0 died \(exit code 3\)$"),
        ("hang_step", r"worker 0 did not answer within 2 s \(hung\?\)"),
    ],
)
def test_worker_faults_are_one_line_errors(fault: str, message: str) -> None:
    envs = SubprocessVectorEnv(TASK, {"fault": fault}, num_envs=2, workers=1, timeout=2.0)
    start = time.monotonic()
    with pytest.raises(EnvWorkerError, match=message) as info:
        _play(envs)
    assert time.monotonic() - start < 15
    assert _one_line(info.value).startswith(f"environment '{TASK}': worker 0 ")
    assert isinstance(info.value, EnvError)
    if fault == "raise_step":  # the worker's traceback, with the environment's own
        assert "Traceback" in info.value.details
        assert 'raise ValueError("injected fault")' in info.value.details
    assert not envs._procs  # workers were stopped


def test_a_worker_killed_between_calls_is_a_worker_error() -> None:
    """Its pipe is broken when the next command is sent: that used to surface as a bare
    BrokenPipeError, which the CLI took for a file problem."""
    envs = SubprocessVectorEnv(TASK, {}, num_envs=2, workers=1)
    envs.reset([0, 1], np.ones(2, bool))
    proc = envs._procs[0]
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=10)
    with pytest.raises(EnvWorkerError, match=r"worker 0 died \(exit code -9\)$"):
        for _ in range(3):  # the first send may still fit in the pipe's buffer
            envs.step(np.zeros((2, 2), np.int64), np.ones(2, bool))
    assert not envs._procs


def test_bad_output_in_a_worker_is_an_output_error_with_the_global_env_index() -> None:
    # 3 environments over 2 workers (2 + 1): only env 2, the second worker's first, steps
    envs = SubprocessVectorEnv(TASK, {"fault": "nan_reward"}, num_envs=3, workers=2)
    envs.reset([0, 1, 2], np.ones(3, bool))
    only_env_2 = np.array([False, False, True])
    with pytest.raises(EnvOutputError) as info:
        for _ in range(3):
            envs.step(np.zeros((3, 2), np.int64), only_env_2)
    assert re.search(r"non-finite reward \(nan\) in step\(\) \(env 2\)" + ADVICE, str(info.value))
    assert "Traceback" in info.value.details
    assert not envs._procs


def test_env_errors_keep_their_details_through_pickle() -> None:
    # workers and Ray actors send exceptions pickled; ``args`` alone would lose the details
    for err in (EnvError("m", "tb"), EnvOutputError("m", "tb"), EnvWorkerError("m", "tb")):
        again = pickle.loads(pickle.dumps(err))
        assert type(again) is type(err) and str(again) == "m" and again.details == "tb"


# -- vectorised simulators (their own batched arrays) ----------------------------------------


class NativeVectorEnv:
    """A simulator with a native batch axis: ``B`` counters; env ``bad_env`` shows ``fault``
    from step ``at_step`` on (``"nan_state"``, ``"nan_next_obs"``: NaN in the view after the
    episode's last step, ``"state_shape"``)."""

    def __init__(self, num_envs: int, fault: str, bad_env: int = 1, at_step: int = 2) -> None:
        self.num_envs = num_envs
        self.fault, self.bad_env, self.at_step = fault, bad_env, at_step
        self.t = np.zeros(num_envs, np.int64)
        self.limit = 4 if fault == "nan_next_obs" else 10

    def env_info(self) -> EnvInfo:
        return EnvInfo(n_agents=2, n_actions=3, obs_dim=4, state_dim=5, episode_limit=self.limit)

    def reset(self, seeds: Sequence[int], mask: np.ndarray) -> None:
        self.t[mask] = 0

    def observations(self) -> np.ndarray:
        obs = np.repeat(self.t[:, None, None], 2, 1).repeat(4, 2).astype(np.float32)
        if self.fault == "nan_next_obs":
            obs[self.bad_env, 0, 1] = np.nan if self.t[self.bad_env] == self.limit else 0.0
        return obs  # [B, N, O]

    def states(self) -> np.ndarray:
        state = np.repeat(self.t[:, None], 5, 1).astype(np.float32)  # [B, S]
        if self.fault == "nan_state" and self.t[self.bad_env] >= self.at_step:
            state[self.bad_env, 2] = np.nan
        if self.fault == "state_shape" and self.t[0] >= self.at_step:
            return state[:, :4]
        return state

    def avail_actions(self) -> np.ndarray:
        return np.ones((self.num_envs, 2, 3), bool)  # [B, N, A]

    def step(self, actions: np.ndarray, active: np.ndarray) -> VectorStep:
        self.t += active
        b = self.num_envs
        return VectorStep(np.ones(b, np.float32), np.zeros(b, bool), np.zeros(b, bool), [{}] * b)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "fault, message",
    [
        ("nan_state", r"returned a non-finite state \(nan\) in step\(\) \(env 1\)"),
        (
            "nan_next_obs",
            r"returned a non-finite observation \(nan\) for agent 0 in step\(\) \(env 1\)",
        ),
        (
            "state_shape",
            r"returned states of shape \(3, 4\) in step\(\), expected \(3, 5\) \[B, S\]",
        ),
    ],
)
def test_bad_output_of_a_vectorised_simulator(fault: str, message: str) -> None:
    with pytest.raises(EnvOutputError, match=f"^environment 'native' {message}: fix the"):
        _play(NativeVectorEnv(3, fault), name="native")


class ActingEnv(NativeVectorEnv):
    """A simulator that acts for the agents (as SMAX): each call plays one step whose arrays
    it builds itself; ``garbage`` puts NaN in the observation of env 1, which only steps when
    ``env1_steps``."""

    steps_per_call = 1

    def __init__(self, env1_steps: bool) -> None:
        super().__init__(2, "none")
        self.env1_steps = env1_steps

    def load_agents(self, weights: AgentWeights, seed: int) -> None:
        pass

    def play(
        self, seeds: Sequence[int], count: int, epsilon: float, active: np.ndarray, t: np.ndarray
    ) -> PlayedSteps:
        b = self.num_envs
        started = ~active & (np.arange(b) < len(seeds))  # [B] (every env idle between calls)
        if not self.env1_steps:
            started[1] = False
        stepped = active | started  # [B]
        k = 1 if stepped.any() else 0  # no step at all once nothing is left to play
        obs = np.zeros((1, b, 2, 4), np.float32)
        obs[0, 1, 1, 3] = np.nan  # env 1 (stepped or not), agent 1
        ends = stepped.copy()  # one-step episodes
        return PlayedSteps(
            started=started[None][:k],
            stepped=stepped[None][:k],
            t=np.zeros((k, b), np.int64),
            actions=np.zeros((k, b, 2), np.int64),
            obs=obs[:k],
            state=np.zeros((k, b, 5), np.float32),
            avail=np.ones((k, b, 2, 3), bool),
            reward=np.ones((k, b), np.float32),
            terminated=ends[None][:k],
            truncated=np.zeros((k, b), bool),
            next_obs=np.zeros((k, b, 2, 4), np.float32),
            next_state=np.zeros((k, b, 5), np.float32),
            next_avail=np.ones((k, b, 2, 3), bool),
            infos={(0, int(i)): {} for i in np.flatnonzero(ends)},
        )


def test_nan_from_a_simulator_that_acts_for_the_agents() -> None:
    with pytest.raises(
        EnvOutputError, match=r"observation \(nan\) for agent 1 in reset\(\) \(env 1\)"
    ):
        _play(ActingEnv(env1_steps=True), name="acting", episodes=2)


def test_nan_where_no_environment_stepped_is_ignored() -> None:
    # env 1 never steps: its entries are ignored, as the PlayedSteps contract says
    runner = EpisodeRunner(ActingEnv(env1_steps=False), _controller(ActingEnv(True).env_info()))
    batch, stats = runner.run([0], epsilon=1.0)
    assert stats.lengths == [1] and torch.isfinite(batch.obs).all()


# -- the learner ---------------------------------------------------------------------------


def _learner(lr: float) -> tuple[QLearner, EpisodeRunner]:
    envs = make_vector_env(TASK, {}, num_envs=4)
    info = envs.env_info()
    controller = _controller(info)
    mixer = QMixer(info.n_agents, info.state_dim, 8)
    learner = QLearner(controller, mixer, lr=lr, optimizer="adam")
    return learner, EpisodeRunner(envs, controller, name=TASK)


def _weights(learner: QLearner) -> list[torch.Tensor]:
    return [p.detach().clone() for p in learner.params]


def test_a_nan_batch_raises_before_the_step_and_leaves_the_weights() -> None:
    learner, runner = _learner(lr=5e-4)
    batch, _ = runner.run(list(range(4)), epsilon=1.0)
    learner.train(batch)  # a healthy update: the optimiser has state
    before = _weights(learner)
    optimiser_state = {k: dict(v) for k, v in learner.optimiser.state.items()}
    batch.reward[0, 1] = float("nan")  # garbage the runner would have refused
    with pytest.raises(DivergenceError, match=r"^loss is nan \(gradient norm nan, mean Q -?\d"):
        learner.train(batch)
    after = _weights(learner)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(torch.isfinite(p).all() for p in after)
    steps = {k: v["step"] for k, v in learner.optimiser.state.items()}
    assert steps == {k: v["step"] for k, v in optimiser_state.items()}


def test_a_diverging_learner_stops_with_finite_weights() -> None:
    # a huge learning rate blows the values up within a few updates
    learner, runner = _learner(lr=1e6)
    batch, _ = runner.run(list(range(4)), epsilon=1.0)
    before = _weights(learner)
    with pytest.raises(DivergenceError) as info:
        for _ in range(50):
            before = _weights(learner)
            learner.train(batch)
    assert _one_line(info.value)
    after = _weights(learner)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(torch.isfinite(p).all() for p in after)
