"""check_env: does an environment honour the MultiAgentEnv contract? Actionable messages."""

from __future__ import annotations

import numpy as np

from qmix.envs.base import MultiAgentEnv, VectorEnv
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


def check_vector_env(envs: VectorEnv, steps: int | None = None, seed: int = 0) -> EnvInfo:
    """Check a :class:`VectorEnv`: shapes, dtypes, masks, masked reset, seeding, no auto-reset.

    Plays random available actions for ``steps`` batched steps (default: two episode limits),
    resetting each environment when its episode ends.

    Raises:
        EnvCheckError: with a one-line description of the first problem found.
    """
    info = envs.env_info()
    if not isinstance(info, EnvInfo):
        raise EnvCheckError(f"env_info() must return qmix.types.EnvInfo, got {type(info).__name__}")
    b = envs.num_envs
    rng = np.random.default_rng(seed)
    everyone = np.ones(b, dtype=bool)

    def arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        obs, state, avail = envs.observations(), envs.states(), envs.avail_actions()
        _check_array("observations()", obs, (b, info.n_agents, info.obs_dim), "float")
        _check_array("states()", state, (b, info.state_dim), "float")
        _check_array("avail_actions()", avail, (b, info.n_agents, info.n_actions), "bool")
        if not avail.any(axis=-1).all():
            raise EnvCheckError("avail_actions() has an agent with no available action")
        return obs.copy(), state.copy(), avail.copy()

    seeds = [seed + i for i in range(b)]
    envs.reset(seeds, everyone)
    first_obs, first_state, _ = arrays()
    envs.reset(seeds, everyone)
    again_obs, again_state, _ = arrays()
    if not (np.array_equal(first_obs, again_obs) and np.array_equal(first_state, again_state)):
        raise EnvCheckError(
            "reset(seeds) is not reproducible: the same seeds gave different states"
        )
    lengths = np.zeros(b, dtype=int)
    ended = 0
    for _ in range(steps if steps is not None else 2 * info.episode_limit):
        _, _, avail = arrays()
        actions = np.array([[rng.choice(np.flatnonzero(row)) for row in env] for env in avail])
        result = envs.step(actions, everyone)
        for name, value, dtype in (
            ("reward", result.reward, np.floating),
            ("terminated", result.terminated, np.bool_),
            ("truncated", result.truncated, np.bool_),
        ):
            if not isinstance(value, np.ndarray) or value.shape != (b,):
                raise EnvCheckError(f"step().{name} must be a numpy array of shape [{b}]")
            if not np.issubdtype(value.dtype, dtype):
                raise EnvCheckError(f"step().{name} has dtype {value.dtype}")
        if not np.isfinite(result.reward).all():
            raise EnvCheckError("step() returned a non-finite reward")
        if len(result.infos) != b:
            raise EnvCheckError(f"step().infos must hold {b} dicts, got {len(result.infos)}")
        if (result.terminated & result.truncated).any():
            raise EnvCheckError("step() reported both terminated and truncated: a true end wins")
        lengths += 1
        # the runner cuts an episode at episode_limit whatever the environment says
        done = result.terminated | result.truncated | (lengths >= info.episode_limit)
        if done.any():
            ended += int(done.sum())
            kept_obs, _, _ = arrays()  # the post-episode arrays stay readable: no auto-reset
            envs.reset([seed + 1000 + i for i in range(b)], done)
            after_obs, _, _ = arrays()
            if not np.array_equal(kept_obs[~done], after_obs[~done]):
                raise EnvCheckError("reset(mask) changed environments outside the mask")
            lengths[done] = 0
    if ended == 0:
        raise EnvCheckError("no episode ended within the steps checked: is episode_limit right?")
    return info
