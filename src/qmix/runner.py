"""Runner: steps a VectorEnv with the controller and returns whole episodes. Never trains.

One batched action selection per step for all ``B`` environments (``B = 1`` is the same
path). Every environment that finishes an episode starts the next one on the next step, with
the next seed of the supply it was given, so no environment sits idle while others finish.

Two ways to play:

- :meth:`EpisodeRunner.run` plays exactly one episode per seed of a list and returns them all
  in seed order (evaluation, tests);
- :meth:`EpisodeRunner.collect` returns as soon as ``count`` episodes have finished and keeps
  the unfinished ones running into the next call (training). :meth:`EpisodeRunner.drain`
  finishes those without starting new ones, before an evaluation or a checkpoint.

Every started episode is finished and returned exactly once (by ``collect`` or ``drain``), so
returns are not biased towards short episodes. Episodes come back padded to the episode
limit, ordered by when they started, with ``filled`` as the mask.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from qmix.data.episode_batch import EpisodeBatch
from qmix.envs.base import VectorEnv
from qmix.policy.controller import AgentController

# a finished episode: (start number, reset seed, arrays padded to the limit, final info)
_Finished = tuple[int, int, dict[str, np.ndarray], dict[str, Any]]


@dataclass
class RolloutStats:
    """What a collection call saw: one entry per episode, in the batch's row order."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)  # the reset seed of each episode

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
        self.info = info = envs.env_info()
        b, limit, n = envs.num_envs, info.episode_limit, info.n_agents
        # the episode in flight in each environment, padded to the limit (numpy: cheaper
        # fancy indexing than torch; wrapped zero-copy when a batch is returned)
        self._stage: dict[str, np.ndarray] = {
            "obs": np.zeros((b, limit + 1, n, info.obs_dim), np.float32),
            "state": np.zeros((b, limit + 1, info.state_dim), np.float32),
            "avail_actions": np.zeros((b, limit + 1, n, info.n_actions), bool),
            "actions": np.zeros((b, limit, n), np.int64),
            "reward": np.zeros((b, limit), np.float32),
            "terminated": np.zeros((b, limit), bool),
            "truncated": np.zeros((b, limit), bool),
            "filled": np.zeros((b, limit), bool),
        }
        self._t = np.zeros(b, np.int64)  # [B] step within each environment's episode
        self._active = np.zeros(b, bool)  # [B] an episode is in flight
        self._order = np.zeros(b, np.int64)  # [B] start number of each episode in flight
        self._seed = np.zeros(b, np.int64)  # [B] reset seed of each episode in flight
        self._started = 0  # episodes started by this runner, numbering them in start order

    @property
    def in_flight(self) -> int:
        """Episodes started and not yet returned (non-zero only between ``collect`` calls)."""
        return int(self._active.sum())

    def run(
        self, seeds: list[int], epsilon: float, generator: torch.Generator | None = None
    ) -> tuple[EpisodeBatch, RolloutStats]:
        """Play exactly one episode per seed.

        Args:
            seeds: reset seed of each episode, ``[K]``; episode ``k`` lands in row ``k``.
            epsilon: exploration rate (0 for greedy evaluation).
            generator: RNG for exploration draws.

        Returns:
            the episodes ``[K, T+1, ...]`` (padded to the episode limit) and their statistics.

        Raises:
            RuntimeError: episodes from :meth:`collect` are still in flight (drain them first).
        """
        if self.in_flight:
            raise RuntimeError(
                f"{self.in_flight} collected episodes are still running: call drain() first"
            )
        return self._play(iter(seeds), None, epsilon, generator)

    def collect(
        self,
        count: int,
        seeds: Iterator[int],
        epsilon: float,
        generator: torch.Generator | None = None,
    ) -> tuple[EpisodeBatch, RolloutStats]:
        """Play until at least ``count`` episodes have finished and return those.

        Environments that finish start the next episode from ``seeds`` at once; episodes
        still running at the end carry on in the next call, with that call's ``epsilon``.

        Args:
            count: episodes to finish (more when several finish on the last step).
            seeds: reset seeds of the episodes to start, consumed in order across calls.
            epsilon: exploration rate.
            generator: RNG for exploration draws.
        """
        return self._play(seeds, count, epsilon, generator)

    def drain(
        self, epsilon: float, generator: torch.Generator | None = None
    ) -> tuple[EpisodeBatch, RolloutStats]:
        """Finish the episodes :meth:`collect` left running, starting none (may return none)."""
        return self._play(iter(()), None, epsilon, generator)

    # -- the loop ----------------------------------------------------------------------------
    def _play(
        self,
        seeds: Iterator[int],
        count: int | None,
        epsilon: float,
        generator: torch.Generator | None,
    ) -> tuple[EpisodeBatch, RolloutStats]:
        """Step until ``count`` episodes finished (``None``: until every episode finished),
        starting an episode from ``seeds`` in every idle environment while seeds last."""
        stage, t, active, limit = self._stage, self._t, self._active, self.info.episode_limit
        done_rows: list[_Finished] = []
        if not active.any():
            self.controller.init_hidden(self.envs.num_envs)
        while count is None or len(done_rows) < count:
            # idle environments start the next episodes here, not as soon as one ends: after
            # the last step of a call they stay idle, so a drain plays no fresh episodes
            if not active.all():
                self._start(~active, seeds)
            if not active.any():
                break
            env_obs = self.envs.observations()  # [B, N, O]
            env_avail = self.envs.avail_actions()  # [B, N, A]
            idx = np.flatnonzero(active)
            ts = t[idx]
            stage["obs"][idx, ts] = env_obs[idx]
            stage["state"][idx, ts] = self.envs.states()[idx]
            stage["avail_actions"][idx, ts] = env_avail[idx]
            # Idle environments act on a dummy mask; their actions are discarded.
            policy_avail = env_avail.copy()
            policy_avail[~active] = True
            chosen = self.controller.select_actions(env_obs, policy_avail, epsilon, generator)
            result = self.envs.step(chosen, active)
            stage["actions"][idx, ts] = chosen[idx]
            stage["reward"][idx, ts] = result.reward[idx]
            stage["filled"][idx, ts] = True
            t[idx] += 1
            term = result.terminated[idx]
            # the adapter reports time limits; reaching episode_limit is one too
            trunc = (result.truncated[idx] | (t[idx] >= limit)) & ~term
            stage["terminated"][idx, ts] = term
            stage["truncated"][idx, ts] = trunc
            done = idx[term | trunc]
            if done.size == 0:
                continue
            # the observation after the last transition, for bootstrapping truncated episodes
            dt = t[done]
            stage["obs"][done, dt] = self.envs.observations()[done]
            stage["state"][done, dt] = self.envs.states()[done]
            stage["avail_actions"][done, dt] = self.envs.avail_actions()[done]
            for i in done:
                episode = {name: array[i].copy() for name, array in stage.items()}
                info = dict(result.infos[i])
                done_rows.append((int(self._order[i]), int(self._seed[i]), episode, info))
                for array in stage.values():
                    array[i] = 0
            active[done] = False
            t[done] = 0
        return self._batch(done_rows)

    def _start(self, idle: np.ndarray, seeds: Iterator[int]) -> None:
        """Reset the environments with ``idle [B]`` that the seed supply can fill."""
        mask = np.zeros_like(idle)
        reset_seeds = [0] * len(idle)
        for i in np.flatnonzero(idle):
            seed = next(seeds, None)
            if seed is None:
                break
            mask[i], reset_seeds[i] = True, int(seed)
            self._seed[i] = int(seed)
            self._order[i] = self._started
            self._started += 1
        if not mask.any():
            return
        self.envs.reset(reset_seeds, mask)
        self.controller.reset_rows(mask)
        self._active |= mask

    def _batch(self, rows: Iterable[_Finished]) -> tuple[EpisodeBatch, RolloutStats]:
        """Stack finished episodes into one batch, ordered by when they started."""
        ordered = sorted(rows, key=lambda row: row[0])
        tensors = {
            name: torch.from_numpy(
                np.stack([episode[name] for _, _, episode, _ in ordered])
                if ordered
                else np.zeros((0, *array.shape[1:]), array.dtype)
            )
            for name, array in self._stage.items()
        }
        batch = EpisodeBatch(**tensors)
        reward = tensors["reward"].numpy()
        stats = RolloutStats(
            returns=reward.sum(axis=1, dtype=np.float64).tolist(),
            lengths=tensors["filled"].numpy().sum(axis=1).tolist(),
            infos=[info for _, _, _, info in ordered],
            seeds=[seed for _, seed, _, _ in ordered],
        )
        return batch, stats
