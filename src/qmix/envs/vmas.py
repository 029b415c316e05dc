"""VMAS (Bettini et al. 2022): a batched torch simulator as a :class:`~qmix.envs.base.VectorEnv`.

VMAS steps ``B`` copies of a scenario as one batch of tensors, so this adapter steps them in
one call (no Python loop over environments in ``step``). Facts it relies on (vmas 1.5.2,
``vmas/simulator/environment/environment.py``):

- ``vmas.make_env(..., continuous_actions=False)`` gives each agent a ``Discrete`` action
  space (the product of its discrete action vector; action 0 is "stay" for the default
  3-way axes); ``step`` takes one ``[B]`` integer tensor per agent.
- ``terminated_truncated=True`` makes ``step`` return ``terminated`` (the scenario's own
  ``done()``) apart from ``truncated`` (``steps >= max_steps``): the time limit comes out as
  ``truncated`` and a scenario's end as ``terminated`` (a true end wins when both hold).
- VMAS never resets on its own; ``reset_at(i)`` resets one environment and ``seed(s)`` seeds
  VMAS's private random state (torch, numpy and ``random``; the caller's generators are left
  alone), which ``reset_at`` draws from.

Design choices (documented for users):

- **Team reward = mean over agents.** Cooperative VMAS scenarios such as ``balance`` and
  ``transport`` give every agent the same shared reward; the mean keeps it equal to itself
  (a sum would multiply it by ``N``). Where agents also get individual terms (``navigation``'s
  collision penalties) the team reward is the shared part plus the agents' mean penalty.
- **Global state = concatenated agent observations** (unpadded): VMAS has no global state.
- **Per-environment seeding:** ``reset(seeds, mask)`` seeds VMAS's generator with ``seeds[i]``
  (mod ``2**32``, numpy's limit) just before ``reset_at(i)``, so the same seeds give the same
  start states. The scenarios tested here (``balance``, ``navigation``) draw a reset only for
  the environment being reset, so the start state of environment ``i`` depends on
  ``seeds[i]`` alone. Scenarios with noisy dynamics draw that noise from VMAS's one shared
  generator, so their episodes are reproducible for the same sequence of resets and steps.
- **Inactive environments still advance** (VMAS has no masked step): they get action 0 and
  their results are ignored; the adapter keeps its own copies of observations and state, so
  a finished episode's final arrays stay readable until that environment is reset. An
  environment that is reset and then stepped while inactive is reset again (same seed, so
  the same start state) before its first active step.
- ``infos`` are empty dicts: VMAS's per-agent info tensors are not copied per environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qmix.envs.base import VectorStep
from qmix.envs.vector import ArrayVectorEnv
from qmix.types import EnvInfo

# make_env arguments this adapter fixes itself (the rest go to the scenario)
_RESERVED = (
    "continuous_actions",
    "terminated_truncated",
    "dict_spaces",
    "multidiscrete_actions",
    "wrapper",
    "seed",
    "grad_enabled",
)


class VMASVectorEnv(ArrayVectorEnv):
    """``B`` environments of one VMAS scenario stepped as one batch, with discrete actions.

    Observations are zero-padded to the largest agent observation, the state is the
    concatenated (unpadded) agent observations, and padded actions are never available.

    Args:
        scenario: VMAS scenario name, e.g. ``"balance"``, ``"transport"``, ``"navigation"``.
        num_envs: ``B``, the VMAS batch size.
        max_steps: time limit in steps (reported as ``truncated``); also ``episode_limit``.
        device: torch device VMAS simulates on; results come back as numpy arrays.
        **scenario_kwargs: passed to the scenario (e.g. ``n_agents=3``).

    Raises:
        ValueError: unknown scenario, bad sizes, an argument this adapter sets itself, or a
            scenario with dict observations.
    """

    def __init__(
        self,
        scenario: str,
        num_envs: int,
        max_steps: int,
        device: str = "cpu",
        **scenario_kwargs: Any,
    ) -> None:
        import torch
        import vmas

        known = sorted({*vmas.scenarios, *vmas.mpe_scenarios, *vmas.debug_scenarios})
        if scenario not in known:
            raise ValueError(f"unknown VMAS scenario {scenario!r}: use one of {', '.join(known)}")
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
        fixed = sorted(set(scenario_kwargs) & set(_RESERVED))
        if fixed:
            raise ValueError(f"make_vmas sets {', '.join(fixed)} itself; remove it from env_args")

        self._torch = torch
        self.num_envs = num_envs
        self._env = vmas.make_env(
            scenario,
            num_envs=num_envs,
            device=device,
            continuous_actions=False,
            max_steps=max_steps,
            seed=0,
            terminated_truncated=True,
            **scenario_kwargs,
        )
        self._device = self._env.device
        self.n_agents = len(self._env.agents)
        self._n_actions = np.array([space.n for space in self._env.action_space], np.int64)  # [N]
        obs_list = self._scenario_observations()
        self._obs_dims = [int(np.prod(o.shape[1:])) for o in obs_list]
        self._info = EnvInfo(
            n_agents=self.n_agents,
            n_actions=int(self._n_actions.max()),
            obs_dim=max(self._obs_dims),
            state_dim=sum(self._obs_dims),
            episode_limit=max_steps,
        )
        # padded actions of agents with fewer actions are never available
        self._avail = np.arange(self._info.n_actions)[None, :] < self._n_actions[:, None]  # [N, A]
        self._avail = np.broadcast_to(self._avail, (num_envs, *self._avail.shape)).copy()
        self._obs, self._state = self._to_numpy(obs_list)  # [B, N, O], [B, S]
        self._seeds = np.zeros(num_envs, np.int64)  # [B] seed of each env's current episode
        self._at_start = np.zeros(num_envs, bool)  # [B] reset and not yet stepped while active
        self._drifted = np.zeros(num_envs, bool)  # [B] advanced while inactive after a reset

    # -- VMAS plumbing -----------------------------------------------------------------------
    def _scenario_observations(self) -> list[Any]:
        """The scenario's current observations, one ``[B, O_i]`` tensor per agent."""
        (obs_list,) = self._env.get_from_scenario(
            get_observations=True, get_rewards=False, get_infos=False, get_dones=False
        )
        if not all(isinstance(o, self._torch.Tensor) for o in obs_list):
            raise ValueError("VMAS scenarios with dict observations are not supported")
        return list(obs_list)

    def _to_numpy(self, obs_list: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Pad per-agent observations to ``[B, N, O]`` and concatenate them into ``[B, S]``."""
        torch = self._torch
        flat = [o.reshape(self.num_envs, -1).to(torch.float32) for o in obs_list]  # N x [B, O_i]
        state = torch.cat(flat, dim=1)  # [B, S]
        obs = torch.zeros(self.num_envs, self.n_agents, self._info.obs_dim)  # [B, N, O]
        for i, o in enumerate(flat):
            obs[:, i, : o.shape[1]] = o
        return obs.cpu().numpy(), state.cpu().numpy()

    def _reset_one(self, index: int, seed: int) -> None:
        # numpy's global seed must lie in [0, 2**32)
        self._env.seed(int(seed) % 2**32)
        self._env.reset_at(int(index), return_observations=False)

    # -- VectorEnv ---------------------------------------------------------------------------
    def reset(self, seeds: Sequence[int], mask: np.ndarray) -> None:
        """Reset environment ``i`` with ``seeds[i]`` where ``mask [B]``; the others are kept."""
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        if mask.shape != (self.num_envs,) or len(seeds) != self.num_envs:
            raise ValueError(
                f"expected {self.num_envs} seeds and a [{self.num_envs}] mask, "
                f"got {len(seeds)} seeds and mask shape {list(mask.shape)}"
            )
        idx = [int(i) for i in np.flatnonzero(mask)]
        if not idx:
            return
        for i in idx:
            self._reset_one(i, int(seeds[i]))
        obs, state = self._to_numpy(self._scenario_observations())
        self._obs[idx], self._state[idx] = obs[idx], state[idx]
        self._seeds[idx] = [int(seeds[i]) for i in idx]
        self._at_start[idx] = True
        self._drifted[idx] = False

    def step(self, actions: np.ndarray, active: np.ndarray) -> VectorStep:
        """Step every environment once; report and record only the active ones.

        Args:
            actions: ``[B, N]`` int action indices (ignored where not ``active``).
            active: ``[B]`` bool.

        Returns:
            ``reward [B]`` (mean over agents), ``terminated [B]`` (the scenario's own end),
            ``truncated [B]`` (the ``max_steps`` limit), empty ``infos``; zeros where inactive.
        """
        torch = self._torch
        b, n = self.num_envs, self.n_agents
        actions = np.asarray(actions)
        active = np.asarray(active, dtype=bool).reshape(-1)
        if actions.shape != (b, n) or active.shape != (b,):
            raise ValueError(
                f"expected actions [{b}, {n}] and active [{b}], "
                f"got {list(actions.shape)} and {list(active.shape)}"
            )
        chosen = np.where(active[:, None], actions, 0).astype(np.int64)  # [B, N]
        bad = (chosen < 0) | (chosen >= self._n_actions[None, :])
        if bad.any():
            env, agent = np.argwhere(bad)[0]
            raise ValueError(
                f"expected actions in [0, {self._n_actions[agent]}) for agent {agent}, "
                f"got {chosen[env, agent]} in environment {env}"
            )
        # An env reset and then advanced while inactive restarts from the same seed.
        for i in np.flatnonzero(active & self._drifted):
            self._reset_one(int(i), int(self._seeds[i]))
        self._drifted[active] = False

        obs_list, rewards, terminated, truncated, _ = self._env.step(
            [torch.from_numpy(chosen[:, i].copy()).to(self._device) for i in range(n)]
        )
        self._drifted |= self._at_start & ~active
        self._at_start[active] = False

        reward = torch.stack(rewards, dim=1).to(torch.float32).mean(dim=1)  # [B]
        term = terminated.cpu().numpy().astype(bool) & active  # [B]
        trunc = truncated.cpu().numpy().astype(bool) & active & ~term  # [B]
        obs, state = self._to_numpy(list(obs_list))
        self._obs[active], self._state[active] = obs[active], state[active]
        return VectorStep(
            reward=np.where(active, reward.cpu().numpy(), 0.0).astype(np.float32),
            terminated=term,
            truncated=trunc,
            infos=[{} for _ in range(b)],
        )

    def close(self) -> None:
        """Close VMAS's viewer if one was opened."""
        viewer = getattr(self._env, "viewer", None)
        if viewer is not None:
            viewer.close()


def make_vmas(
    scenario: str = "balance", num_envs: int = 1, max_steps: int = 100, **kwargs: Any
) -> VMASVectorEnv:
    """Build ``num_envs`` batched VMAS environments of ``scenario`` with discrete actions.

    Args:
        scenario: VMAS scenario name (``vmas.scenarios``, ``vmas.mpe_scenarios`` or
            ``vmas.debug_scenarios``).
        num_envs: ``B``.
        max_steps: time limit in steps (``truncated``), the task's ``episode_limit``.
        **kwargs: ``device`` (default ``"cpu"``) and the scenario's own arguments.

    Returns:
        a :class:`~qmix.envs.base.VectorEnv` over the VMAS batch.
    """
    return VMASVectorEnv(scenario, num_envs=num_envs, max_steps=max_steps, **kwargs)
