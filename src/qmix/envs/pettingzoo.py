"""PettingZoo ParallelEnv adapter, and MPE (Multi-Agent Particle Environments) via ``mpe2``.

:class:`PettingZooEnv` turns any PettingZoo ``ParallelEnv`` with ``Discrete`` action spaces into
a :class:`~qmix.envs.base.MultiAgentEnv`:

- **Agent order** is ``env.possible_agents``, fixed for the env's life.
- **Padding**: observations are flattened and zero-padded to the largest agent observation
  ``O``; actions are padded to the largest action space ``A`` and the padded actions are
  unavailable.
- **Action masks** come from the env when it gives them, in either PettingZoo convention:
  an observation dict ``{"observation": ..., "action_mask": ...}`` or
  ``info[agent]["action_mask"]``. Otherwise every real action is available.
- **Global state** is ``env.state()`` when the env implements it, else the concatenated padded
  observations ``[N * O]``; or what a ``state_fn`` reads from the simulator (MPE with
  ``state="simulator"``, as its family preset sets: :func:`mpe_world_state`; by default mpe2's
  ``state()``, the concatenated unpadded observations).
- **Team reward** is the SUM of the agents' rewards, the common-reward convention of EPyMARL.
  For MPE ``simple_spread`` with ``N`` agents that is ``N * (1 - local_ratio) * global +
  local_ratio * sum(collision penalties)``, so returns scale with ``N``.
- **Episode end**: the episode ends when every agent is done (terminated, truncated, or gone
  from ``env.agents``). It is ``terminated`` if an agent that was still playing reported a
  termination in the final step, else ``truncated`` (e.g. MPE's ``max_cycles``). The adapter
  also cuts the episode as ``truncated`` at ``episode_limit`` steps, whatever the env does.
- **Agents that leave mid-episode** (not in MPE): from the step that reports them done (or
  drops them from ``env.agents``), their observation is zeros and only action 0 is available,
  as for dead units in SMAC; their actions are not sent to the env. In the final step of the
  episode the agents that leave in it keep their real observation and mask (bootstrapping a
  truncated episode reads them). Agents absent at reset are treated the same way; an agent
  that is gone never comes back within the episode.
- ``StepResult.info`` is empty: per-agent infos are not forwarded.

mpe2 renders headless (``render_mode="rgb_array"`` draws on an off-screen pygame surface, no
display needed). Its ``close()`` calls ``pygame.quit()``, which breaks rendering (not stepping)
of the other mpe2 envs alive in the same process; build the env you render last.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from qmix.types import EnvInfo, StepResult

# mpe2 scenarios whose agents all cooperate, so that a summed team reward is meaningful.
# The competitive ones (simple_adversary, simple_crypto, simple_push, simple_tag,
# simple_world_comm) have opposing teams and are left out.
MPE_SCENARIOS = (
    "simple_v3",
    "simple_spread_v3",
    "simple_speaker_listener_v4",
    "simple_reference_v3",
    "simple_formation_v1",
    "simple_line_v1",
    "collect_treasure_v1",
)


class PettingZooEnv:
    """A PettingZoo ``ParallelEnv`` with discrete actions as a :class:`MultiAgentEnv`.

    See the module docstring for the conventions (padding, masks, state, team reward, ends).
    The wrapped env is reset once here (unseeded) so that the arrays are valid right away.

    Args:
        env: a PettingZoo ``ParallelEnv``; every agent's action space must be ``Discrete``.
        episode_limit: the time limit ``T`` in steps; defaults to the env's ``max_cycles``
            (read from ``env.unwrapped``), which must then exist.
        state_from_observations: build the state as the concatenation of the unpadded agent
            observations (zeros for absent agents) instead of calling ``env.state()``. Only
            for envs whose ``state()`` is exactly that, such as mpe2: it saves computing every
            observation a second time each step.
        state_fn: a function of nothing giving the global state ``[S]`` (read after every
            reset and step), in place of ``env.state()``: a state the adapter builds from the
            simulator itself (MPE's :func:`mpe_world_state`).

    Raises:
        ValueError: a non-discrete action space, or no episode limit given or found.
    """

    def __init__(
        self,
        env: Any,
        episode_limit: int | None = None,
        state_from_observations: bool = False,
        state_fn: Callable[[], np.ndarray] | None = None,
    ) -> None:
        from gymnasium import spaces

        self.env = env
        self.agents: list[str] = list(env.possible_agents)
        n = len(self.agents)
        if n == 0:
            raise ValueError("the PettingZoo env has no possible_agents")
        self._index = {agent: i for i, agent in enumerate(self.agents)}

        # -- spaces: per-agent action sizes and (flat) observation sizes ----------------------
        self._n_real = np.zeros(n, dtype=np.int64)  # real actions per agent
        self._start = np.zeros(n, dtype=np.int64)  # Discrete(n, start=k) offsets
        self._obs_spaces: list[Any] = []
        obs_sizes: list[int] = []
        for i, agent in enumerate(self.agents):
            act_space = env.action_space(agent)
            if not isinstance(act_space, spaces.Discrete):
                raise ValueError(
                    f"PettingZooEnv needs Discrete action spaces, agent {agent!r} has {act_space}"
                )
            self._n_real[i] = int(act_space.n)
            self._start[i] = int(act_space.start)
            obs_space = env.observation_space(agent)
            if isinstance(obs_space, spaces.Dict) and "observation" in obs_space.spaces:
                obs_space = obs_space.spaces["observation"]
            # Box observations are only reshaped (fast path); other spaces use gymnasium's flatten.
            self._obs_spaces.append(None if isinstance(obs_space, spaces.Box) else obs_space)
            obs_sizes.append(int(spaces.flatdim(obs_space)))
        self._obs_sizes = obs_sizes
        self._flatten = spaces.flatten
        self.n_agents = n
        self.n_actions = int(self._n_real.max())
        self.obs_dim = max(obs_sizes)

        if episode_limit is None:
            episode_limit = getattr(getattr(env, "unwrapped", env), "max_cycles", None)
        if not isinstance(episode_limit, int) or episode_limit < 1:
            raise ValueError(
                f"episode_limit must be a positive int (none given, env has no max_cycles), "
                f"got {episode_limit!r}"
            )
        self.episode_limit = episode_limit

        # -- preallocated arrays, filled in place every step ----------------------------------
        self._obs = np.zeros((n, self.obs_dim), dtype=np.float32)  # [N, O]
        self._avail = np.zeros((n, self.n_actions), dtype=bool)  # [N, A]
        self._real = np.arange(self.n_actions)[None, :] < self._n_real[:, None]  # [N, A]
        self._rows = np.arange(n)
        self._done = np.zeros(n, dtype=bool)  # [N] agents that left the episode
        self._t = 0
        self._ended = False
        self._offsets = np.concatenate([[0], np.cumsum(obs_sizes)]).tolist()
        # Where the state comes from: "raw" (unpadded observations, written by _fill), "env"
        # (env.state()) or "padded" (the padded observations); decided after the first reset.
        self._state_mode = "raw" if state_from_observations else "pending"
        self._state = np.zeros(self._offsets[-1], dtype=np.float32)  # [S]
        self._state_fn = state_fn

        self._reset_env(None)
        if state_fn is not None:
            self._state = np.asarray(state_fn(), dtype=np.float32).reshape(-1).copy()
            self._state_mode = "fn"
        elif not state_from_observations:
            # The env's own state when it implements state() (ParallelEnv's default raises).
            try:
                self._state = np.asarray(env.state(), dtype=np.float32).reshape(-1).copy()
                self._state_mode = "env"
            except (NotImplementedError, AttributeError):
                self._state = self._obs.reshape(-1).copy()
                self._state_mode = "padded"
        self.state_dim = int(self._state.shape[0])

    # -- MultiAgentEnv ---------------------------------------------------------------------------
    def env_info(self) -> EnvInfo:
        """Sizes of the task: ``N`` possible agents, padded ``A`` and ``O``, ``S``, time limit."""
        return EnvInfo(
            n_agents=self.n_agents,
            n_actions=self.n_actions,
            obs_dim=self.obs_dim,
            state_dim=self.state_dim,
            episode_limit=self.episode_limit,
        )

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; ``seed`` is passed to the env's ``reset(seed=...)``."""
        self._reset_env(seed)
        self._read_state()

    def observations(self) -> np.ndarray:
        """Padded observations ``[N, O]`` float32 (a copy)."""
        return self._obs.copy()

    def state(self) -> np.ndarray:
        """Global state ``[S]`` float32 (a copy)."""
        return self._state.copy()

    def avail_actions(self) -> np.ndarray:
        """Available actions ``[N, A]`` bool (a copy); padded actions are never available."""
        return self._avail.copy()

    def step(self, actions: np.ndarray) -> StepResult:
        """Apply the joint action ``actions [N]`` (int, padded indices).

        Returns:
            the summed team reward, and whether the episode terminated or was truncated.

        Raises:
            ValueError: wrong shape, or an action that is not available.
            RuntimeError: the episode already ended (call ``reset()``).
        """
        if self._ended:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        actions = np.asarray(actions).reshape(-1)
        if actions.shape[0] != self.n_agents:
            raise ValueError(f"expected {self.n_agents} actions, got {actions.shape[0]}")
        in_range = (actions >= 0) & (actions < self.n_actions)
        if not in_range.all() or not self._avail[self._rows, actions].all():
            raise ValueError(
                f"expected available actions, got {actions.tolist()} "
                f"(available: {[np.flatnonzero(row).tolist() for row in self._avail]})"
            )
        # Only agents still in play act; departed agents' action-0 placeholders are dropped.
        joint = {
            agent: int(actions[self._index[agent]] + self._start[self._index[agent]])
            for agent in self.env.agents
        }
        obs, rewards, terminations, truncations, infos = self.env.step(joint)
        reward = float(sum(rewards.values()))  # EPyMARL common reward: sum over agents

        was_done = self._done.copy()
        live = set(self.env.agents)
        terminated = False
        for i, agent in enumerate(self.agents):
            term = bool(terminations.get(agent, False))
            if term and not was_done[i]:
                terminated = True
            if term or truncations.get(agent, False) or agent not in live:
                self._done[i] = True
        self._t += 1
        all_done = bool(self._done.all())
        ended = all_done or self._t >= self.episode_limit
        # Agents that left are blanked at once (SMAC's convention for dead units), except those
        # leaving in the final step: their last view is kept to bootstrap a truncated episode.
        self._fill(obs, infos, blank=was_done if ended else self._done)
        self._read_state()
        self._ended = ended
        # A true end needs the env itself to have finished every agent; the adapter's own
        # episode_limit cut is always a time limit.
        terminated = all_done and terminated
        return StepResult(reward=reward, terminated=terminated, truncated=ended and not terminated)

    def render(self) -> np.ndarray:
        """An RGB frame ``[H, W, 3]`` uint8; needs ``render_mode="rgb_array"`` at construction."""
        if getattr(self.env, "render_mode", None) != "rgb_array":
            raise ValueError("render() needs the env built with render_mode='rgb_array'")
        return np.asarray(self.env.render())

    def close(self) -> None:
        """Close the wrapped env."""
        self.env.close()

    # -- helpers -----------------------------------------------------------------------------
    def _reset_env(self, seed: int | None) -> None:
        obs, infos = self.env.reset(seed=seed)
        # Agents absent at the start (some envs spawn them later) count as gone for now.
        self._done[:] = [agent not in obs for agent in self.agents]
        self._t = 0
        self._ended = False
        self._fill(obs, infos, blank=self._done)

    def _fill(self, obs: dict[str, Any], infos: dict[str, Any], blank: np.ndarray) -> None:
        """Write padded observations and masks; zeros and action 0 only for absent agents.

        Args:
            obs: the env's observations, by agent.
            infos: the env's infos, by agent.
            blank: ``[N]`` bool, agents to treat as absent even if ``obs`` has them.
        """
        for i, agent in enumerate(self.agents):
            if blank[i] or agent not in obs:
                self._obs[i] = 0.0
                if self._state_mode == "raw":
                    self._state[self._offsets[i] : self._offsets[i + 1]] = 0.0
                self._avail[i] = False
                self._avail[i, 0] = True  # a no-op slot so every agent has an action
                continue
            value = obs[agent]
            mask = None
            if isinstance(value, dict):
                mask = value.get("action_mask")
                value = value["observation"]
            info = infos.get(agent) if infos else None
            if mask is None and isinstance(info, dict):
                mask = info.get("action_mask")
            space = self._obs_spaces[i]
            flat = np.asarray(value).reshape(-1) if space is None else self._flatten(space, value)
            size = self._obs_sizes[i]
            self._obs[i, :size] = flat
            self._obs[i, size:] = 0.0
            if self._state_mode == "raw":
                self._state[self._offsets[i] : self._offsets[i + 1]] = flat
            if mask is None:
                self._avail[i] = self._real[i]
            else:
                self._avail[i] = False
                self._avail[i, : self._n_real[i]] = np.asarray(mask, dtype=bool).reshape(-1)
                if not self._avail[i].any():
                    self._avail[i, 0] = True  # the contract needs one action; 0 stands in

    def _read_state(self) -> None:
        if self._state_fn is not None:
            self._state[:] = np.asarray(self._state_fn(), dtype=np.float32).reshape(-1)
        elif self._state_mode == "env":
            self._state[:] = np.asarray(self.env.state(), dtype=np.float32).reshape(-1)
        elif self._state_mode == "padded":
            self._state[:] = self._obs.reshape(-1)


def make_pettingzoo(env: Any, episode_limit: int | None = None, **kwargs: Any) -> PettingZooEnv:
    """Wrap a PettingZoo ``ParallelEnv``, given as an object or by import path.

    Args:
        env: a ``ParallelEnv``; or a module path whose ``parallel_env(**kwargs)`` builds one
            (``"pettingzoo.butterfly.cooperative_pong_v5"``); or ``"module:callable"``.
        episode_limit: time limit in steps; defaults to the env's ``max_cycles``.
        **kwargs: passed to the constructor when ``env`` is a path.

    Returns:
        the adapted env (see :class:`PettingZooEnv`).
    """
    if isinstance(env, str):
        module_name, _, attr = env.partition(":")
        env = getattr(importlib.import_module(module_name), attr or "parallel_env")(**kwargs)
    elif kwargs:
        raise ValueError(f"keyword arguments {sorted(kwargs)} need env given as an import path")
    return PettingZooEnv(env, episode_limit=episode_limit)


def mpe_world_state(world: Any) -> np.ndarray:
    """MPE's state from its simulator: every agent's absolute position and velocity, then every
    landmark's absolute position (and velocity, if it moves), in the world's order.

    Args:
        world: an mpe2 ``World`` (``env.unwrapped.world``).

    Returns:
        ``[4 N + 2 L]`` float32 for ``N`` agents and ``L`` fixed landmarks (simple_spread: 18).
    """
    parts = [x for a in world.agents for x in (a.state.p_pos, a.state.p_vel)]
    for landmark in world.landmarks:
        parts.append(landmark.state.p_pos)
        if landmark.movable:
            parts.append(landmark.state.p_vel)
    return np.concatenate(parts).astype(np.float32)


def make_mpe(
    scenario: str = "simple_spread_v3",
    render_mode: str | None = "rgb_array",
    state: str = "observations",
    **kwargs: Any,
) -> PettingZooEnv:
    """A cooperative MPE scenario from ``mpe2``, with discrete actions.

    Args:
        scenario: one of :data:`MPE_SCENARIOS`, e.g. ``"simple_spread_v3"``.
        render_mode: ``"rgb_array"`` (the default) enables :meth:`PettingZooEnv.render`; mpe2
            draws only when asked, so it costs nothing per step (266 us per step either way,
            measured); ``None`` turns rendering off.
        state: ``"simulator"`` (:func:`mpe_world_state`: absolute positions and velocities of
            every agent and landmark; the MPE family preset's) or ``"observations"`` (the
            default, as before: mpe2's own ``state()``, the concatenated unpadded agent
            observations, agent-centred).
        **kwargs: passed to ``mpe2.<scenario>.parallel_env`` (``N``, ``max_cycles``,
            ``local_ratio``, ...). ``max_cycles`` (default 25) is the episode limit.

    Returns:
        the adapted env, its state as ``state`` says.
    """
    if scenario not in MPE_SCENARIOS:
        raise ValueError(
            f"unknown MPE scenario {scenario!r}: use one of {', '.join(MPE_SCENARIOS)}"
        )
    if state not in ("simulator", "observations"):
        raise ValueError(f"state must be 'simulator' or 'observations', got {state!r}")
    if kwargs.pop("continuous_actions", False):
        raise ValueError("continuous_actions=True is not supported: QMIX needs discrete actions")
    # mpe2 imports pygame, which prints a banner to stdout on import unless told not to.
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    module = importlib.import_module(f"mpe2.{scenario}")
    env = module.parallel_env(continuous_actions=False, render_mode=render_mode, **kwargs)
    limit = int(env.unwrapped.max_cycles)
    if state == "simulator":
        world = env.unwrapped.world  # the same object through every reset
        return PettingZooEnv(env, episode_limit=limit, state_fn=lambda: mpe_world_state(world))
    # mpe2's SimpleEnv.state() concatenates observe(agent) over possible_agents: reuse them.
    return PettingZooEnv(env, episode_limit=limit, state_from_observations=True)
