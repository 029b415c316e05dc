"""Runner: steps a VectorEnv with the controller and returns whole episodes. Never trains."""

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
    """What a collection call saw: one entry per episode."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)

    @property
    def env_steps(self) -> int:
        """Transitions collected."""
        return int(sum(self.lengths))


class EpisodeRunner:
    """Runs ``B`` episodes in lockstep with one batched action selection per step.

    Args:
        envs: the vector of environments (``B = envs.num_envs``; B = 1 is the same path).
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
        """Play one episode in each environment.

        Args:
            seeds: reset seed per environment, ``[B]``.
            epsilon: exploration rate (0 for greedy evaluation).
            generator: RNG for exploration draws.

        Returns:
            the episodes ``[B, T+1, ...]`` (padded to the episode limit) and their statistics.
        """
        b = self.envs.num_envs
        batch = EpisodeBatch.zeros(b, self.info)
        self.envs.reset(seeds)
        self.controller.init_hidden(b)
        active = np.ones(b, dtype=bool)  # [B]: episode still running
        slot_valid = np.ones(b, dtype=bool)  # [B]: slot t is part of the episode (t <= T_ep)
        returns = np.zeros(b)
        lengths = np.zeros(b, dtype=int)
        infos: list[dict[str, Any]] = [{} for _ in range(b)]
        device = self.controller.device
        for t in range(self.info.episode_limit + 1):
            obs = torch.from_numpy(self.envs.observations())  # [B, N, O]
            avail = torch.from_numpy(self.envs.avail_actions())  # [B, N, A]
            rows = torch.from_numpy(slot_valid)
            batch.obs[rows, t] = obs[rows]
            batch.state[rows, t] = torch.from_numpy(self.envs.states())[rows]
            batch.avail_actions[rows, t] = avail[rows]
            if t == self.info.episode_limit or not active.any():
                break
            # Finished environments act on a dummy mask; their actions are discarded.
            avail_for_policy = avail.clone()
            avail_for_policy[~torch.from_numpy(active)] = True
            actions = self.controller.select_actions(
                obs.to(device), avail_for_policy.to(device), epsilon, generator
            ).cpu()  # [B, N]
            results = self.envs.step(actions.numpy(), active)
            slot_valid = active.copy()  # every env that stepped has a slot t + 1
            for i, result in enumerate(results):
                if result is None:
                    continue
                truncated = result.truncated or (
                    not result.terminated and t + 1 == self.info.episode_limit
                )
                batch.actions[i, t] = actions[i]
                batch.reward[i, t] = result.reward
                batch.terminated[i, t] = result.terminated
                batch.truncated[i, t] = truncated and not result.terminated
                batch.filled[i, t] = True
                returns[i] += result.reward
                lengths[i] += 1
                if result.terminated or truncated:
                    active[i] = False
                    infos[i] = dict(result.info)
        stats = RolloutStats(returns=returns.tolist(), lengths=lengths.tolist(), infos=infos)
        return batch, stats
