"""check_env: does an environment honour the MultiAgentEnv contract? Actionable messages."""

from __future__ import annotations

import numpy as np

from qmix.envs.base import MultiAgentEnv
from qmix.types import EnvInfo, StepResult


class EnvCheckError(ValueError):
    """The environment breaks the contract; the message says what to fix."""


def _check_array(name: str, value: object, shape: tuple[int, ...], kind: str) -> None:
    if not isinstance(value, np.ndarray):
        raise EnvCheckError(f"{name} must return a numpy array, got {type(value).__name__}")
    if value.shape != shape:
        raise EnvCheckError(
            f"{name} must have shape {list(shape)} (from env_info), got {list(value.shape)}"
        )
    if kind == "bool" and value.dtype != np.bool_:
        raise EnvCheckError(f"{name} must have dtype bool, got {value.dtype}")
    if kind == "float" and not np.issubdtype(value.dtype, np.floating):
        raise EnvCheckError(f"{name} must have a float dtype, got {value.dtype}")
    if kind == "float" and not np.isfinite(value).all():
        raise EnvCheckError(f"{name} contains NaN or inf")


def _check_step_arrays(env: MultiAgentEnv, info: EnvInfo) -> np.ndarray:
    _check_array("observations()", env.observations(), (info.n_agents, info.obs_dim), "float")
    _check_array("state()", env.state(), (info.state_dim,), "float")
    avail = env.avail_actions()
    _check_array("avail_actions()", avail, (info.n_agents, info.n_actions), "bool")
    if not avail.any(axis=1).all():
        raise EnvCheckError(
            "avail_actions() has an agent with no available action (give it a no-op)"
        )
    return avail


def check_env(env: MultiAgentEnv, episodes: int = 3, seed: int = 0) -> EnvInfo:
    """Play ``episodes`` random episodes and check shapes, dtypes, masks, seeding and steps.

    Returns:
        the environment's :class:`EnvInfo` when everything holds.

    Raises:
        EnvCheckError: with a one-line description of the first problem found.
    """
    for method in ("env_info", "reset", "observations", "state", "avail_actions", "step", "close"):
        if not callable(getattr(env, method, None)):
            raise EnvCheckError(f"the environment has no method {method}() (see qmix.envs.base)")
    info = env.env_info()
    if not isinstance(info, EnvInfo):
        raise EnvCheckError(f"env_info() must return qmix.types.EnvInfo, got {type(info).__name__}")
    rng = np.random.default_rng(seed)
    for episode in range(episodes):
        env.reset(seed=seed + episode % 2)  # episodes 0 and 2 share a seed
        rewards: list[float] = []
        for _ in range(info.episode_limit):
            avail = _check_step_arrays(env, info)
            actions = np.array([rng.choice(np.flatnonzero(row)) for row in avail])
            result = env.step(actions)
            if not isinstance(result, StepResult):
                raise EnvCheckError(
                    f"step() must return qmix.types.StepResult, got {type(result).__name__}"
                )
            if not np.isfinite(result.reward):
                raise EnvCheckError(f"step() returned a non-finite reward {result.reward}")
            if result.terminated and result.truncated:
                raise EnvCheckError(
                    "step() reported both terminated and truncated: a true end wins"
                )
            rewards.append(float(result.reward))
            if result.terminated or result.truncated:
                break
        _check_step_arrays(env, info)  # the final slot is read for bootstrapping
    if episodes >= 3 and not _same_start(env, seed):
        raise EnvCheckError(
            "reset(seed) is not reproducible: the same seed gave different observations"
        )
    return info


def _same_start(env: MultiAgentEnv, seed: int) -> bool:
    env.reset(seed=seed)
    first = env.observations().copy(), env.state().copy()
    env.reset(seed=seed)
    return bool(
        np.array_equal(first[0], env.observations()) and np.array_equal(first[1], env.state())
    )
