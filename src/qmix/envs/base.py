"""The MultiAgentEnv protocol: one episode at a time, PyMARL-style.

Adapters translate external APIs into this protocol. The adapter decides what is a true
terminal state and what is a time limit (DESIGN.md section 3): a time limit is reported as
``truncated``, never as ``terminated``.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from qmix.types import AgentWeights, EnvInfo, StepResult


class EnvError(RuntimeError):
    """An environment's own code raised, hung, or returned bad output (issue 13).

    The message is one line naming the task and the method, e.g. ``environment 'my.env:make'
    raised ValueError in step(): boom``; the environment's exception, when there is one, is
    the ``__cause__``.

    Args:
        message: one line for the user.
        details: the full traceback text of the environment's own exception (or of a worker
            process), ``""`` when there is none; for a log file or ``--verbose``, not the
            console.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details

    def __reduce__(self) -> tuple[type[EnvError], tuple[str, str]]:
        # pickle (worker processes, Ray) keeps the details, which ``args`` does not hold
        return type(self), (str(self), self.details)


class EnvOutputError(EnvError):
    """An environment returned bad output: non-finite observations, state or reward (NaN,
    inf), or arrays of the wrong shape. Nothing is trained on it."""


def env_label(name: str) -> str:
    """How messages name a task: ``environment 'lbf'`` (``the environment`` when unnamed)."""
    return "the environment" if name == "environment" else f"environment {name!r}"


def one_line(err: BaseException) -> str:
    """``"ValueError: boom"``: an exception's type and the first line of its message."""
    lines = str(err).strip().splitlines()
    if not lines:
        return type(err).__name__
    more = " ..." if len(lines) > 1 else ""
    return f"{type(err).__name__}: {lines[0].strip()}{more}"


def env_raised(name: str, method: str, err: BaseException) -> EnvError:
    """The :class:`EnvError` for ``err`` raised by environment ``name`` in ``method``
    (``"step()"``, say), with the traceback in ``details``; raise it ``from err``."""
    kind, _, text = one_line(err).partition(": ")
    message = f"{env_label(name)} raised {kind} in {method}" + (f": {text}" if text else "")
    return EnvError(message, "".join(traceback.format_exception(err)))


def output_error(name: str, problem: str) -> EnvOutputError:
    """The :class:`EnvOutputError` for ``problem`` (``"returned a non-finite reward (nan) in
    step() (env 0)"``, say), with the advice to check the environment."""
    advice = "fix the environment"
    if name != "environment":
        advice += f"; qmix check-env {name} shows the contract"
    return EnvOutputError(f"{env_label(name)} {problem}: {advice}")


@runtime_checkable
class MultiAgentEnv(Protocol):
    """A cooperative task with a shared team reward.

    Arrays are numpy: ``observations() -> [N, O] float32``, ``state() -> [S] float32``,
    ``avail_actions() -> [N, A] bool`` (at least one action available per agent).
    """

    def env_info(self) -> EnvInfo:
        """Sizes of the task; constant over the env's life."""
        ...

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; the same seed gives the same episode under the same actions."""
        ...

    def observations(self) -> np.ndarray:
        """Per-agent observations of the current step, ``[N, O]``."""
        ...

    def state(self) -> np.ndarray:
        """Global state of the current step, ``[S]``."""
        ...

    def avail_actions(self) -> np.ndarray:
        """Which actions each agent may take now, ``[N, A]`` bool."""
        ...

    def step(self, actions: np.ndarray) -> StepResult:
        """Apply the joint action ``actions [N]`` (int) and return the team's result."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


@dataclass(frozen=True)
class VectorStep:
    """What one batched step returns; entries of inactive environments are ignored.

    Attributes:
        reward: ``[B]`` float32 team rewards.
        terminated: ``[B]`` bool, true terminal states.
        truncated: ``[B]`` bool, time limits.
        infos: ``B`` dicts (empty for inactive environments), e.g. ``{"battle_won": True}``.
    """

    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    infos: list[dict[str, Any]]


class VectorEnv(Protocol):
    """``B`` environments of one task stepped together; arrays carry a leading ``B``.

    Contract:

    - ``reset(seeds, mask)`` starts a new episode in every environment ``i`` with ``mask[i]``,
      seeded with ``seeds[i]``; the others are left untouched.
    - ``step(actions, active)`` advances the environments with ``active[i]``; the others may
      be stepped or not (their results are ignored) but must stay finite.
    - There is **no auto-reset**: after an episode ends, ``observations()``, ``states()`` and
      ``avail_actions()`` describe the state after its last transition (needed to bootstrap a
      truncated episode) until the runner resets that environment.
    """

    num_envs: int

    def env_info(self) -> EnvInfo:
        """Sizes of the task (shared by every environment)."""
        ...

    def reset(self, seeds: Sequence[int], mask: np.ndarray) -> None:
        """Reset the environments selected by ``mask [B]``, environment ``i`` with ``seeds[i]``."""
        ...

    def observations(self) -> np.ndarray:
        """``[B, N, O]`` float32."""
        ...

    def states(self) -> np.ndarray:
        """``[B, S]`` float32."""
        ...

    def avail_actions(self) -> np.ndarray:
        """``[B, N, A]`` bool."""
        ...

    def step(self, actions: np.ndarray, active: np.ndarray) -> VectorStep:
        """Step the active environments with ``actions [B, N]`` (int)."""
        ...

    def close(self) -> None:
        """Release every environment (and worker processes)."""
        ...


def episode_ends(terminated: Any, truncated: Any, t_next: Any, limit: int) -> tuple[Any, Any]:
    """The runner's end-of-episode rule, for numpy or JAX arrays of one batched step.

    ``terminated`` and ``truncated`` are what the environment reported, ``t_next`` the number
    of transitions each episode has after the step. Reaching the episode limit is a time limit
    too; a true terminal state wins over a time limit. Returns (terminated, truncated).
    """
    return terminated, (truncated | (t_next >= limit)) & ~terminated


@dataclass(frozen=True)
class PlayedSteps:
    """``K`` consecutive batched steps, as the runner records them; every array is ``[K, B, ...]``.

    At the top of step ``k`` the idle environments ``b`` with ``started[k, b]`` start an episode,
    taking the next reset seeds of the runner's queue in ``(k, b)`` order; then every
    environment with ``stepped[k, b]`` acts on ``obs``, ``state`` and ``avail`` and steps.

    Attributes:
        started: ``[K, B]`` bool, an episode starts at the top of step ``k``.
        stepped: ``[K, B]`` bool, the environment stepped (entries elsewhere are ignored).
        t: ``[K, B]`` int, the index of the step within its episode.
        actions: ``[K, B, N]`` int, the joint actions.
        obs, state, avail: ``[K, B, N, O]``, ``[K, B, S]``, ``[K, B, N, A]``, what the agents
            acted on.
        reward: ``[K, B]`` float32 team rewards.
        terminated, truncated: ``[K, B]`` bool, by :func:`episode_ends` (the episode limit is
            a time limit).
        next_obs, next_state, next_avail: the views after the step (read where an episode
            ended, to bootstrap a truncated one).
        infos: the final info of each episode that ended, keyed by ``(k, b)``.
    """

    started: np.ndarray
    stepped: np.ndarray
    t: np.ndarray
    actions: np.ndarray
    obs: np.ndarray
    state: np.ndarray
    avail: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    next_obs: np.ndarray
    next_state: np.ndarray
    next_avail: np.ndarray
    infos: dict[tuple[int, int], dict[str, Any]]


def acting_selectors(envs: object) -> frozenset[str]:
    """The action selectors an :class:`AgentActingVectorEnv` can act with."""
    return frozenset(getattr(envs, "selectors", frozenset({"epsilon_greedy"})))


@runtime_checkable
class AgentActingVectorEnv(VectorEnv, Protocol):
    """A :class:`VectorEnv` that can run the agents' acting step itself (a JAX simulator
    compiling the policy into its step). The runner then hands it the weights once per call
    instead of choosing every action in PyTorch, and the environment plays up to
    ``steps_per_call`` batched steps per call, starting episodes and stopping as the runner
    would; the environment owns the acting state (hidden states, previous actions) and zeroes
    it when an episode starts."""

    steps_per_call: int
    # It may also declare ``selectors: frozenset[str]``, the action selectors
    # (:mod:`qmix.policy.selectors`) it can act with; without it, ``epsilon_greedy`` only. The
    # runner refuses to hand it agents with another selector (:func:`acting_selectors`).

    def load_agents(self, weights: AgentWeights, seed: int) -> None:
        """Act with these weights from now on; ``seed`` seeds the exploration draws."""
        ...

    def play(
        self,
        seeds: Sequence[int],
        count: int,
        epsilon: float | None,
        active: np.ndarray,
        t: np.ndarray,
    ) -> PlayedSteps:
        """Up to ``steps_per_call`` batched steps, the agents acting by the loaded weights'
        selector with exploration rate ``epsilon`` (``None``: greedily).

        Each step first starts an episode in every idle environment (not ``active``), in
        index order, while ``seeds`` last (the next reset seeds, in order; the acting state of
        those environments is zeroed), then acts and steps every active environment; an
        episode ends by :func:`episode_ends` with the environment's episode limit, ``t [B]``
        being the step within each episode in flight. Stops early, before a step, once
        ``count`` episodes have ended or no environment is active. Returns the steps played
        (``K = 0`` when none was)."""
        ...
