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
from qmix.envs.base import AgentActingVectorEnv, VectorEnv, VectorStep
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
        act_in_env: when ``envs`` can run the agents' acting step itself
            (:class:`~qmix.envs.base.AgentActingVectorEnv`, e.g. SMAX), let it: the
            controller's weights are handed over once per call and each step is one call into
            the simulator. ``False`` always acts through the controller.
    """

    def __init__(
        self, envs: VectorEnv, controller: AgentController, act_in_env: bool = True
    ) -> None:
        self.envs = envs
        self.controller = controller
        self.acting_env = envs if act_in_env and isinstance(envs, AgentActingVectorEnv) else None
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
        # the same buffers with (env, slot) merged into one axis: [B * (T+1), ...] and
        # [B * T, ...] views, written with one index array per step (cheaper than two)
        self._flat = {
            name: array.reshape(-1, *array.shape[2:]) for name, array in self._stage.items()
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
        flat = self._flat
        done_rows: list[_Finished] = []
        if self.acting_env is not None:
            # one draw from the training RNG seeds this call's exploration in the simulator
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if epsilon else 0
            self.acting_env.load_agents(self.controller.agent_weights(), seed)
        elif not active.any():
            self.controller.init_hidden(self.envs.num_envs)
        while count is None or len(done_rows) < count:
            starting, reset_seeds = self._claim(~active, seeds)
            if not active.any():
                break
            idx = np.flatnonzero(active)
            # the live rows: a view when every environment is live (the usual case), else a gather
            live: slice | np.ndarray = slice(None) if idx.size == active.size else idx
            ts = t[idx]
            slot, step = idx * (limit + 1) + ts, idx * limit + ts  # rows of the flat views
            chosen, before, result = self._step(starting, reset_seeds, epsilon, generator)
            flat["obs"][slot], flat["state"][slot], flat["avail_actions"][slot] = (
                view[live] for view in before
            )
            flat["actions"][step] = chosen[live]
            flat["reward"][step] = result.reward[live]
            flat["filled"][step] = True
            t[live] += 1
            term = result.terminated[live]
            # the adapter reports time limits; reaching episode_limit is one too
            trunc = (result.truncated[live] | (t[live] >= limit)) & ~term
            flat["terminated"][step] = term
            flat["truncated"][step] = trunc
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

    def _step(
        self,
        starting: np.ndarray,
        reset_seeds: list[int],
        epsilon: float,
        generator: torch.Generator | None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray], VectorStep]:
        """Start the episodes of ``starting [B]``, choose joint actions ``[B, N]`` and step
        the live environments; returns the actions, what the agents saw (obs, state, avail,
        ``[B, ...]``) and the step.

        A simulator that acts for the agents does all of it in one call; otherwise the
        environments reset, the controller chooses and the environments step.
        """
        active = self._active
        if self.acting_env is not None:
            return self.acting_env.reset_act_step(reset_seeds, starting, epsilon, active)
        if starting.any():
            self.envs.reset(reset_seeds, starting)
            self.controller.reset_rows(starting)
        # copies: the step below may overwrite the environments' buffers
        obs, state = self.envs.observations().copy(), self.envs.states().copy()
        avail = self.envs.avail_actions().copy()
        # Idle environments act on a dummy mask; their actions are discarded.
        policy_avail = avail | ~active[:, None, None]
        chosen = self.controller.select_actions(obs, policy_avail, epsilon, generator)
        return chosen, (obs, state, avail), self.envs.step(chosen, active)

    def _claim(self, idle: np.ndarray, seeds: Iterator[int]) -> tuple[np.ndarray, list[int]]:
        """Give the next seeds to the environments with ``idle [B]``, while seeds last.

        Idle environments start the next episodes at the top of a step, not as soon as one
        ends: after the last step of a call they stay idle, so a drain plays no fresh episodes.

        Returns:
            the environments starting an episode now ``[B]`` and every environment's reset
            seed (0 where none starts), for ``reset``.
        """
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
        self._active |= mask
        return mask, reset_seeds

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
