"""Runner: steps a VectorEnv with the controller and returns whole episodes. Never trains.

One batched action selection per step for all ``B`` environments (``B = 1`` is the same
path). A call plays exactly ``K = len(seeds)`` episodes: it starts ``min(B, K)`` of them, and
whenever an environment finishes while episodes remain it is reset with the next seed (its
agents' hidden state too). Every started episode is finished, so returns are not biased towards
short episodes. Episodes of different lengths come back padded, with ``filled`` as the mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from qmix.data.episode_batch import EpisodeBatch
from qmix.envs.base import VectorEnv
from qmix.policy.controller import AgentController


@dataclass
class RolloutStats:
    """What a collection call saw: one entry per episode, in seed order."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)

    @property
    def env_steps(self) -> int:
        """Transitions collected."""
        return int(sum(self.lengths))


class EpisodeRunner:
    """Plays episodes on a :class:`VectorEnv` with decentralised epsilon-greedy agents.

    Args:
        envs: the vector of environments (``B = envs.num_envs``).
        controller: acts for every agent of every environment.
    """

    def __init__(self, envs: VectorEnv, controller: AgentController) -> None:
        self.envs = envs
        self.controller = controller
        self.info = envs.env_info()

    def run(
        self,
        seeds: list[int],
        epsilon: float,
        generator: torch.Generator | None = None,
    ) -> tuple[EpisodeBatch, RolloutStats]:
        """Play one episode per seed.

        Args:
            seeds: reset seed of each episode, ``[K]``; episode ``k`` lands in row ``k``.
            epsilon: exploration rate (0 for greedy evaluation).
            generator: RNG for exploration draws.

        Returns:
            the episodes ``[K, T+1, ...]`` (padded to the episode limit) and their statistics.
        """
        info, b, k = self.info, self.envs.num_envs, len(seeds)
        limit, n = info.episode_limit, info.n_agents
        # numpy staging (cheaper fancy indexing than torch), wrapped zero-copy at the end
        obs = np.zeros((k, limit + 1, n, info.obs_dim), np.float32)
        state = np.zeros((k, limit + 1, info.state_dim), np.float32)
        avail = np.zeros((k, limit + 1, n, info.n_actions), bool)
        actions = np.zeros((k, limit, n), np.int64)
        reward = np.zeros((k, limit), np.float32)
        terminated = np.zeros((k, limit), bool)
        truncated = np.zeros((k, limit), bool)
        filled = np.zeros((k, limit), bool)
        infos: list[dict[str, Any]] = [{} for _ in range(k)]

        row = np.full(b, -1)  # [B] output row of each environment's current episode
        t = np.zeros(b, np.int64)  # [B] step within that episode
        active = np.zeros(b, bool)  # [B]
        first = min(b, k)
        active[:first] = True
        row[:first] = np.arange(first)
        started = first
        self.envs.reset(self._seeds_for(seeds, row, active), active)
        self.controller.init_hidden(b)

        while active.any():
            env_obs = self.envs.observations()  # [B, N, O]
            env_avail = self.envs.avail_actions()  # [B, N, A]
            idx = np.flatnonzero(active)
            r, ts = row[idx], t[idx]
            obs[r, ts] = env_obs[idx]
            state[r, ts] = self.envs.states()[idx]
            avail[r, ts] = env_avail[idx]
            # Finished environments act on a dummy mask; their actions are discarded.
            policy_avail = env_avail.copy()
            policy_avail[~active] = True
            chosen = self.controller.select_actions(env_obs, policy_avail, epsilon, generator)
            result = self.envs.step(chosen, active)
            actions[r, ts] = chosen[idx]
            reward[r, ts] = result.reward[idx]
            filled[r, ts] = True
            t[idx] += 1
            term = result.terminated[idx]
            # the adapter reports time limits; reaching episode_limit is one too
            trunc = (result.truncated[idx] | (t[idx] >= limit)) & ~term
            terminated[r, ts] = term
            truncated[r, ts] = trunc
            done = idx[term | trunc]
            if done.size == 0:
                continue
            # the observation after the last transition, for bootstrapping truncated episodes
            dr, dt = row[done], t[done]
            obs[dr, dt] = self.envs.observations()[done]
            state[dr, dt] = self.envs.states()[done]
            avail[dr, dt] = self.envs.avail_actions()[done]
            for i in done:
                infos[row[i]] = dict(result.infos[i])
            active[done] = False
            refill = done[: k - started]
            if refill.size:
                row[refill] = np.arange(started, started + refill.size)
                started += refill.size
                t[refill] = 0
                active[refill] = True
                mask = np.zeros(b, bool)
                mask[refill] = True
                self.envs.reset(self._seeds_for(seeds, row, mask), mask)
                self.controller.reset_rows(mask)

        batch = EpisodeBatch(
            obs=torch.from_numpy(obs),
            state=torch.from_numpy(state),
            avail_actions=torch.from_numpy(avail),
            actions=torch.from_numpy(actions),
            reward=torch.from_numpy(reward),
            terminated=torch.from_numpy(terminated),
            truncated=torch.from_numpy(truncated),
            filled=torch.from_numpy(filled),
        )
        stats = RolloutStats(
            returns=reward.sum(axis=1, dtype=np.float64).tolist(),
            lengths=filled.sum(axis=1).tolist(),
            infos=infos,
        )
        return batch, stats

    @staticmethod
    def _seeds_for(seeds: list[int], row: np.ndarray, mask: np.ndarray) -> list[int]:
        """Per-environment reset seeds: the seed of the episode each masked env starts."""
        return [int(seeds[row[i]]) if mask[i] else 0 for i in range(len(row))]
