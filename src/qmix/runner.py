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

A simulator that acts for the agents (SMAX) plays several steps per call, starting episodes and
stopping as this loop would; the runner records every call's steps with the same code, one
indexed write per field, into a pool of episode rows.

Every started episode is finished and returned exactly once (by ``collect`` or ``drain``), so
returns are not biased towards short episodes. Episodes come back padded to the episode
limit, ordered by when they started, with ``filled`` as the mask.

Nothing trains on garbage (issue 13): every played step's observations, state and reward (and
the views after an episode's last step) must be finite, and the environments' batched arrays
must have their shapes, else :class:`~qmix.envs.base.EnvOutputError` names the task, the env,
the agent and the call. The checks are a few vectorised numpy reductions per call; the
offender is only searched for once one fails.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from qmix.data.episode_batch import EpisodeBatch
from qmix.envs.base import (
    AgentActingVectorEnv,
    PlayedSteps,
    VectorEnv,
    acting_selectors,
    episode_ends,
    output_error,
)
from qmix.policy.controller import AgentController

# finished episodes of one record call: start numbers [E], reset seeds [E], arrays padded to
# the limit ([E, ...] each) and final infos
_Finished = tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], list[dict[str, Any]]]


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


class SeedQueue:
    """The reset seeds an iterator has yet to give, read ahead as far as asked.

    A simulator that plays several steps per call is handed the next seeds before it is known
    how many episodes will start; the ones it does not use stay here for the next call.
    """

    def __init__(self, source: Iterator[int]) -> None:
        self.source = source
        self._ahead: list[int] = []

    def peek(self, n: int) -> list[int]:
        """The next ``n`` seeds (fewer when the iterator ends), without using them."""
        while len(self._ahead) < n:
            seed = next(self.source, None)
            if seed is None:
                break
            self._ahead.append(int(seed))
        return self._ahead[:n]

    def take(self, n: int) -> list[int]:
        """Use the next ``n`` seeds (peeked before)."""
        taken, self._ahead = self._ahead[:n], self._ahead[n:]
        return taken


class EpisodeRunner:
    """Plays episodes on a :class:`VectorEnv` with decentralised agents, each choosing its
    action by the controller's selector (epsilon-greedy, or sampling a policy).

    Args:
        envs: the vector of environments (``B = envs.num_envs``).
        controller: acts for every agent of every environment.
        act_in_env: when ``envs`` can run the agents' acting step itself
            (:class:`~qmix.envs.base.AgentActingVectorEnv`, e.g. SMAX), let it: the
            controller's weights are handed over once per call and each call into the
            simulator plays several steps. ``False`` always acts through the controller.
        name: the task's name, for error messages.

    Raises:
        ValueError: ``envs`` acts for the agents but not with the controller's selector (a
            stochastic policy must never be run epsilon-greedily; pass ``act_in_env=False``).

    Raises (from every playing method):
        EnvOutputError: an environment returned non-finite values or arrays of wrong shapes.
        EnvError: an environment raised or hung (from the VectorEnv).
    """

    def __init__(
        self,
        envs: VectorEnv,
        controller: AgentController,
        act_in_env: bool = True,
        name: str = "environment",
    ) -> None:
        self.envs = envs
        self.name = name
        self.controller = controller
        self.acting_env = envs if act_in_env and isinstance(envs, AgentActingVectorEnv) else None
        selector, supported = controller.selector.name, acting_selectors(self.acting_env)
        if self.acting_env is not None and selector not in supported:
            raise ValueError(
                f"{name} acts for the agents with {', '.join(sorted(supported))} only, not "
                f"{selector}: act in PyTorch instead (act_in_env=False)"
            )
        self.info = info = envs.env_info()
        b, limit, n = envs.num_envs, info.episode_limit, info.n_agents
        # Episodes in flight, padded to the limit, one row of this pool each (numpy: cheaper
        # fancy indexing than torch). B rows suffice for one step per call; a simulator playing
        # several steps per call may start more episodes in an env before the call's finished
        # ones are copied out, and the pool grows when it needs to.
        rows = 2 * b if self.acting_env is not None else b
        self._pool: dict[str, np.ndarray] = {
            "obs": np.zeros((rows, limit + 1, n, info.obs_dim), np.float32),
            "state": np.zeros((rows, limit + 1, info.state_dim), np.float32),
            "avail_actions": np.zeros((rows, limit + 1, n, info.n_actions), bool),
            "actions": np.zeros((rows, limit, n), np.int64),
            "reward": np.zeros((rows, limit), np.float32),
            "terminated": np.zeros((rows, limit), bool),
            "truncated": np.zeros((rows, limit), bool),
            "filled": np.zeros((rows, limit), bool),
        }
        self._flat = self._flat_views()
        self._free = list(range(rows))  # pool rows holding no episode (all zeros)
        self._order = np.zeros(rows, np.int64)  # [rows] start number of each row's episode
        self._seed = np.zeros(rows, np.int64)  # [rows] reset seed of each row's episode
        self._row = np.full(b, -1, np.int64)  # [B] pool row of each env's episode in flight
        self._t = np.zeros(b, np.int64)  # [B] step within each environment's episode
        self._active = np.zeros(b, bool)  # [B] an episode is in flight
        self._started = 0  # episodes started by this runner, numbering them in start order
        self._train_seeds: SeedQueue | None = None  # collect's seeds, read ahead
        # the shapes of one batched step's arrays after their leading axis: obs, state, avail,
        # reward and actions (the views' own leading axis is B)
        self._shapes = (
            (b, n, info.obs_dim),
            (b, info.state_dim),
            (b, n, info.n_actions),
            (b,),
            (b, n),
        )

    @property
    def in_flight(self) -> int:
        """Episodes started and not yet returned (non-zero only between ``collect`` calls)."""
        return int(self._active.sum())

    def run(
        self, seeds: list[int], epsilon: float | None, generator: torch.Generator | None = None
    ) -> tuple[EpisodeBatch, RolloutStats]:
        """Play exactly one episode per seed.

        Args:
            seeds: reset seed of each episode, ``[K]``; episode ``k`` lands in row ``k``.
            epsilon: exploration rate; ``None`` for greedy evaluation.
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
        return self._play(SeedQueue(iter(seeds)), None, epsilon, generator)

    def collect(
        self,
        count: int,
        seeds: Iterator[int],
        epsilon: float | None,
        generator: torch.Generator | None = None,
    ) -> tuple[EpisodeBatch, RolloutStats]:
        """Play until at least ``count`` episodes have finished and return those.

        Environments that finish start the next episode from ``seeds`` at once; episodes
        still running at the end carry on in the next call, with that call's ``epsilon``.

        Args:
            count: episodes to finish (more when several finish on the last step).
            seeds: reset seeds of the episodes to start, consumed in order across calls
                (pass the same iterator each call: seeds read ahead and not yet used are
                kept for the next call with it).
            epsilon: exploration rate.
            generator: RNG for exploration draws.
        """
        if self._train_seeds is None or self._train_seeds.source is not seeds:
            self._train_seeds = SeedQueue(seeds)
        return self._play(self._train_seeds, count, epsilon, generator)

    def drain(
        self, epsilon: float | None, generator: torch.Generator | None = None
    ) -> tuple[EpisodeBatch, RolloutStats]:
        """Finish the episodes :meth:`collect` left running, starting none (may return none)."""
        return self._play(SeedQueue(iter(())), None, epsilon, generator)

    # -- the loop ----------------------------------------------------------------------------
    def _play(
        self,
        seeds: SeedQueue,
        count: int | None,
        epsilon: float | None,
        generator: torch.Generator | None,
    ) -> tuple[EpisodeBatch, RolloutStats]:
        """Step until ``count`` episodes finished (``None``: until every episode finished),
        starting an episode from ``seeds`` in every idle environment while seeds last."""
        finished: list[_Finished] = []
        ended = 0
        if self.acting_env is not None:
            # one draw from the training RNG seeds this call's exploration in the simulator
            random = self.controller.selector.draws(epsilon)
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if random else 0
            self.acting_env.load_agents(self.controller.agent_weights(), seed)
        elif not self._active.any():
            self.controller.init_hidden(self.envs.num_envs)
        while count is None or ended < count:
            left = 2**31 - 1 if count is None else count - ended
            played = self._steps(seeds, left, epsilon, generator)
            if played is None or played.stepped.shape[0] == 0:  # no environment is active
                break
            self._check_finite(played)
            ended += self._record(played, seeds, finished)
        return self._batch(finished)

    def _steps(
        self,
        seeds: SeedQueue,
        count: int,
        epsilon: float | None,
        generator: torch.Generator | None,
    ) -> PlayedSteps | None:
        """Play the next steps: several in one call of a simulator that acts for the agents
        (stopping once ``count`` episodes ended), else one, with the controller choosing;
        none (``None`` or zero steps) when no environment is active.

        Each step first starts an episode in every idle environment, in index order, while
        seeds last (idle environments start at the top of a step, not as soon as one ends:
        after the last step of a call they stay idle, so a drain plays no fresh episodes).
        """
        active, t, b = self._active, self._t, self.envs.num_envs
        if self.acting_env is not None:
            ahead = seeds.peek(b * self.acting_env.steps_per_call)
            played = self.acting_env.play(ahead, count, epsilon, active, t)
            arrays = (played.obs, played.state, played.avail, played.reward, played.actions)
            if tuple(x.shape[1:] for x in arrays) != self._shapes:
                self._shape_error(arrays, "play()", stacked=True)
            return played
        idle = np.flatnonzero(~active)
        starting = np.zeros(b, bool)  # [B]
        reset_seeds = [0] * b
        for i, seed in zip(idle, seeds.peek(idle.size), strict=False):
            starting[i], reset_seeds[i] = True, seed
        live = active | starting  # [B]
        if not live.any():
            return None
        if starting.any():
            self.envs.reset(reset_seeds, starting)
            self.controller.reset_rows(starting)
        # copies: the step below may overwrite the environments' buffers
        obs, state = self.envs.observations().copy(), self.envs.states().copy()
        avail = self.envs.avail_actions().copy()
        if (obs.shape, state.shape, avail.shape) != self._shapes[:3]:
            self._shape_error((obs, state, avail), "reset()" if starting.any() else "step()")
        # Idle environments act on a dummy mask; their actions are discarded.
        policy_avail = avail | ~live[:, None, None]
        chosen = self.controller.select_actions(obs, policy_avail, epsilon, generator)
        result = self.envs.step(chosen, live)
        if result.reward.shape != self._shapes[3]:
            self._shape_error((obs, state, avail, result.reward), "step()")
        term, trunc = episode_ends(
            result.terminated, result.truncated, t + 1, self.info.episode_limit
        )
        term, trunc = term & live, trunc & live
        return PlayedSteps(
            started=starting[None],
            stepped=live[None],
            t=t[None],
            actions=chosen[None],
            obs=obs[None],
            state=state[None],
            avail=avail[None],
            reward=result.reward[None],
            terminated=term[None],
            truncated=trunc[None],
            next_obs=self.envs.observations()[None],
            next_state=self.envs.states()[None],
            next_avail=self.envs.avail_actions()[None],
            infos={(0, int(i)): result.infos[i] for i in np.flatnonzero(term | trunc)},
        )

    # -- checks (issue 13: nothing trains on garbage) ----------------------------------------
    def _shape_error(
        self, arrays: tuple[np.ndarray, ...], source: str, stacked: bool = False
    ) -> None:
        """Raise for the first of ``arrays`` (obs, state, avail, reward, actions, in that
        order; ``stacked``: each with a leading ``K`` axis) whose shape is wrong."""
        names = ("observations", "states", "avail_actions", "reward", "actions")
        letters = ("[B, N, O]", "[B, S]", "[B, N, A]", "[B]", "[B, N]")
        checks = zip(names, arrays, self._shapes, letters, strict=False)
        for what, array, expected, letter in checks:
            if (array.shape[1:] if stacked else array.shape) != expected:
                axis = " after the leading K axis" if stacked else ""
                raise output_error(
                    self.name,
                    f"returned {what} of shape {tuple(array.shape)} in {source}, "
                    f"expected {expected}{axis} {letter}",
                )

    def _check_finite(self, played: PlayedSteps) -> None:
        """Raise :class:`~qmix.envs.base.EnvOutputError` when a played step's observations,
        state or reward, or the views after an episode's last step, are not finite.

        One vectorised sum per array; entries of environments that did not step are ignored
        (the offender is searched for among the stepped ones only when a sum is not finite)."""
        ends = played.terminated | played.truncated  # [K, B]
        # A sum is non-finite when any term is (and, rarely, when huge finite values overflow,
        # which the search then clears): one numpy call per array instead of two.
        total = float(played.obs.sum()) + float(played.state.sum()) + float(played.reward.sum())
        if ends.any():
            total += float(played.next_obs[ends].sum()) + float(played.next_state[ends].sum())
        if math.isfinite(total):
            return
        self._raise_non_finite(played, ends & played.stepped)

    def _raise_non_finite(self, played: PlayedSteps, ends: np.ndarray) -> None:
        """Find the first non-finite value the agents saw (or would bootstrap from) and raise
        for it; return if every one lies where no environment stepped (ignored)."""
        stepped = played.stepped  # [K, B]
        # (array, where its entries count [K, B], per agent, what the call was)
        checks = (
            ("observation", played.obs, stepped, True, None),
            ("state", played.state, stepped, False, None),
            ("reward", played.reward[..., None], stepped, False, None),
            ("observation", played.next_obs, ends, True, "step()"),
            ("state", played.next_state, ends, False, "step()"),
        )
        for what, array, counts, per_agent, call in checks:
            bad = ~np.isfinite(array)
            lead = bad.any(-1) if per_agent else bad  # [K, B, N] or [K, B, S]
            where = lead.any(-1) & counts  # [K, B]
            if not where.any():
                continue
            k, b = np.argwhere(where)[0]
            value = float(array[k, b][bad[k, b]][0])
            source = call or ("reset()" if played.t[k, b] == 0 else "step()")
            agent = ""
            if per_agent:
                agent = f" for agent {int(np.flatnonzero(lead[k, b])[0])}"
            raise output_error(
                self.name,
                f"returned a non-finite {what} ({value}){agent} in {source} (env {int(b)})",
            )

    def _record(self, played: PlayedSteps, seeds: SeedQueue, finished: list[_Finished]) -> int:
        """Write ``K`` played steps into the episodes in flight, starting episodes where they
        started; append the episodes that ended (copied out, their rows freed) to
        ``finished``. Returns how many ended."""
        k_steps, b = played.stepped.shape
        limit = self.info.episode_limit
        # the pool row of the episode each env plays at each step, [K * B] (k-major)
        row = np.tile(self._row, k_steps)
        # the episodes that started, in (k, b) order, which is the order they took seeds
        n_new = int(played.started.sum())
        if n_new:
            rows = self._take_rows(n_new)  # [n_new]
            self._order[rows] = np.arange(self._started, self._started + n_new)
            self._seed[rows] = seeds.take(n_new)
            self._started += n_new
            number = np.full((k_steps, b), -1)
            number[played.started] = np.arange(n_new)
            latest = np.maximum.accumulate(number, axis=0).ravel()  # each env's latest start
            row = np.where(latest >= 0, rows[latest.clip(min=0)], row)
        # the (step, env) pairs that stepped: all of them (views, no gathers) in the usual case
        stepped = played.stepped.ravel()  # [K * B]
        live = slice(None) if stepped.all() else np.flatnonzero(stepped)

        def pairs(array: np.ndarray) -> np.ndarray:
            """``[K, B, ...]`` -> the stepped pairs, ``[P, ...]``."""
            return array.reshape(k_steps * b, *array.shape[2:])[live]

        r, ts = row[live], pairs(played.t)
        slot, step = r * (limit + 1) + ts, r * limit + ts  # rows of the flat views
        flat = self._flat
        flat["obs"][slot] = pairs(played.obs)
        flat["state"][slot] = pairs(played.state)
        flat["avail_actions"][slot] = pairs(played.avail)
        flat["actions"][step] = pairs(played.actions)
        flat["reward"][step] = pairs(played.reward)
        flat["filled"][step] = True
        term, trunc = pairs(played.terminated), pairs(played.truncated)
        flat["terminated"][step] = term
        flat["truncated"][step] = trunc
        # After the call, exactly the envs that stepped on its last step and did not end
        # there have an episode in flight (every active env steps on every step).
        going = played.stepped[-1] & ~(played.terminated[-1] | played.truncated[-1])  # [B]
        self._active = going
        self._t = np.where(going, played.t[-1] + 1, 0)
        self._row = np.where(going, row[-b:], -1)
        done = np.flatnonzero(term | trunc)  # indices into the pairs
        if done.size == 0:
            return 0
        # the observation after the last transition, for bootstrapping truncated episodes
        pair = np.flatnonzero(stepped)[done]  # [E] flat (k, b) index of each ending
        end_rows, final = r[done], slot[done] + 1
        for name, after in (
            ("obs", played.next_obs),
            ("state", played.next_state),
            ("avail_actions", played.next_avail),
        ):
            flat[name][final] = after.reshape(k_steps * b, *after.shape[2:])[pair]
        episodes = {name: array[end_rows] for name, array in self._pool.items()}  # copies
        infos = [dict(played.infos[divmod(int(i), b)]) for i in pair]
        finished.append((self._order[end_rows], self._seed[end_rows], episodes, infos))
        for array in self._pool.values():
            array[end_rows] = 0
        self._free.extend(end_rows.tolist())
        return int(done.size)

    def _take_rows(self, n: int) -> np.ndarray:
        """``n`` free pool rows for new episodes, growing the pool (doubling) if needed."""
        if len(self._free) < n:
            size = len(self._order)
            extra = max(size, n - len(self._free))
            for name, array in self._pool.items():
                self._pool[name] = np.concatenate(
                    [array, np.zeros((extra, *array.shape[1:]), array.dtype)]
                )
            self._order = np.concatenate([self._order, np.zeros(extra, np.int64)])
            self._seed = np.concatenate([self._seed, np.zeros(extra, np.int64)])
            self._free += range(size, size + extra)
            self._flat = self._flat_views()
        taken, self._free = self._free[:n], self._free[n:]
        return np.array(taken, np.int64)

    def _flat_views(self) -> dict[str, np.ndarray]:
        """The pool with (row, slot) merged into one axis: ``[rows * (T+1), ...]`` and
        ``[rows * T, ...]`` views, written with one index array per array."""
        return {name: array.reshape(-1, *array.shape[2:]) for name, array in self._pool.items()}

    def _batch(self, finished: list[_Finished]) -> tuple[EpisodeBatch, RolloutStats]:
        """Stack finished episodes into one batch, ordered by when they started."""
        orders = np.concatenate([order for order, _, _, _ in finished] or [np.zeros(0, np.int64)])
        perm = np.argsort(orders, kind="stable")
        tensors = {
            name: torch.from_numpy(
                np.concatenate([episodes[name] for _, _, episodes, _ in finished])[perm]
                if finished
                else np.zeros((0, *array.shape[1:]), array.dtype)
            )
            for name, array in self._pool.items()
        }
        batch = EpisodeBatch(**tensors)
        reward = tensors["reward"].numpy()
        infos = [info for _, _, _, chunk in finished for info in chunk]
        seeds = np.concatenate([seed for _, seed, _, _ in finished] or [np.zeros(0, np.int64)])
        stats = RolloutStats(
            returns=reward.sum(axis=1, dtype=np.float64).tolist(),
            lengths=tensors["filled"].numpy().sum(axis=1).tolist(),
            infos=[infos[i] for i in perm],
            seeds=seeds[perm].tolist(),
        )
        return batch, stats
