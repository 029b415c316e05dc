"""JaxMARL's SMAX (StarCraft-like micromanagement in JAX) as a :class:`VectorEnv`.

The learners control the allied units; the enemies are played by JaxMARL's heuristic AI
(``HeuristicEnemySMAX``). All ``B`` environments live in one batched JAX state that is
stepped and reset by ``jax.jit(jax.vmap(...))`` functions compiled once per instance.

Translation from JaxMARL (jaxmarl 0.2.0):

- Steps use ``step_env``, the non-auto-resetting step (the public ``step`` resets a finished
  episode at once, which would hide the final state needed for bootstrapping).
- ``terminated``: all allies dead or all enemies dead. ``truncated``: the step counter reached
  ``max_steps`` without a battle end (JaxMARL reports both as ``dones["__all__"]``).
- ``battle_won``: all enemies dead and at least one ally alive (the condition under which
  JaxMARL pays ``won_battle_bonus``; both teams dying together is a draw, not a win).
- Team reward: JaxMARL returns one reward per agent, identical within a team (the allies'
  normalised damage dealt plus the win bonus); ``ally_0``'s reward is used.
- Global state: SMAX's own world state (``get_world_state``): per unit health fraction,
  raw position, raw weapon cooldown and unit-type one-hot (zeros for dead units), then every
  unit's team and type. Positions are in map units (0 to 32), not normalised.
- Acting: with :meth:`SMAXVectorEnv.load_agents`, the agents' network and their action
  selector (epsilon-greedy for Q-learners, sampling the softmax policy for COMA) run inside
  the jitted step, and :meth:`SMAXVectorEnv.play` runs ``steps_per_call`` batched
  steps (resets included) in one compiled call (maths in :mod:`qmix.envs.jax_agents`).
- Seeds: environment ``i`` is reset with ``jax.random.PRNGKey(seeds[i] % 2**32)`` and keeps its
  own key stream, so an episode depends only on its seed and its actions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from qmix.envs.base import PlayedSteps, VectorEnv, VectorStep
from qmix.types import AgentWeights, EnvInfo

# the pieces of a packed device array: (shape, dtype) of each
_Layout = list[tuple[tuple[int, ...], type]]


class SMAXVectorEnv:
    """``B`` SMAX battles against the heuristic enemy, batched in one JAX state.

    Args:
        map_name: a SMAX scenario name, e.g. ``"3m"``, ``"2s3z"``, ``"3s_vs_5z"``.
        num_envs: ``B``, the number of battles stepped together.
        normalize_state: scale the world state's positions by the map size, cooldowns (clipped
            at 0: SMAX lets them run negative without bound) by the longest cooldown and unit
            types by the largest type, so entries are of order 1 (raw positions reach 32;
            see docs/environments.md).
        steps_per_call: batched steps :meth:`play` runs per compiled call (each call costs
            a dispatch and a copy of a few hundred microseconds; more steps per call
            amortise them, and steps after the call's stopping point cost nothing).
        **kwargs: passed to ``jaxmarl.make("HeuristicEnemySMAX", ...)``, e.g. ``max_steps``
            (the episode limit, default 100), ``enemy_shoots``, ``attack_mode``,
            ``observation_type``, ``won_battle_bonus``.

    Arrays returned are numpy, read after one ``jax.device_get`` per reset or step:
    ``observations() [B, N, O]`` float32, ``states() [B, S]`` float32,
    ``avail_actions() [B, N, A]`` bool.
    """

    def __init__(
        self,
        map_name: str = "3m",
        num_envs: int = 1,
        normalize_state: bool = True,
        steps_per_call: int = 8,
        **kwargs: Any,
    ) -> None:
        import jax
        import jax.numpy as jnp
        import jaxmarl
        from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO, map_name_to_scenario

        from qmix.envs import jax_agents

        if map_name not in MAP_NAME_TO_SCENARIO:
            known = ", ".join(sorted(MAP_NAME_TO_SCENARIO))
            raise ValueError(f"unknown SMAX map_name {map_name!r}: use one of {known}")
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if not isinstance(steps_per_call, int) or steps_per_call < 1:
            raise ValueError(f"steps_per_call must be a positive int, got {steps_per_call!r}")
        if "scenario" in kwargs:
            raise ValueError("pass the SMAX scenario as map_name, not as scenario")
        if kwargs.get("action_type", "discrete") != "discrete":
            raise ValueError(
                f"only action_type='discrete' is supported, got {kwargs['action_type']!r}"
            )

        env: Any = jaxmarl.make(
            "HeuristicEnemySMAX", scenario=map_name_to_scenario(map_name), **kwargs
        )
        self._env = env
        self.map_name = map_name
        self.num_envs = num_envs
        n_allies = int(env.num_allies)
        self._info = EnvInfo(
            n_agents=n_allies,
            n_actions=int(env.num_ally_actions),
            obs_dim=int(env.obs_size),
            state_dim=int(env.state_size),
            episode_limit=int(env.max_steps),
        )
        agents = list(env.agents)  # the allies, "ally_0" ... "ally_{N-1}"
        scale, floor = _world_state_scale(env)
        state_scale = jnp.asarray(scale if normalize_state else 1.0)
        state_floor = jnp.asarray(floor if normalize_state else -np.inf)

        def views(state: Any) -> tuple[Any, Any, Any]:
            """What the agents see in one env: obs [N, O], world state [S], avail [N, A]."""
            obs_dict = env.get_obs(state)
            obs = jnp.stack([obs_dict[a] for a in agents]).astype(jnp.float32)
            world = env.get_world_state(state).astype(jnp.float32)
            world = jnp.maximum(world, state_floor) * state_scale
            avail_dict = env.get_avail_actions(state)
            avail = jnp.stack([avail_dict[a] for a in agents]).astype(jnp.bool_)
            return obs, world, avail

        def reset_one(seed: Any) -> tuple[Any, Any, Any]:
            """Fresh episode from a uint32 seed: (env state, run key, views)."""
            reset_key, run_key = jax.random.split(jax.random.PRNGKey(seed))
            _, state = env.reset(reset_key)
            return state, run_key, views(state)

        def step_one(state: Any, key: Any, actions: Any) -> tuple[Any, ...]:
            """One transition of one env; ``actions [N]`` int."""
            key, step_key = jax.random.split(key)
            action_dict = {a: actions[i] for i, a in enumerate(agents)}
            _, state, rewards, _, _ = env.step_env(step_key, state, action_dict)
            alive = state.state.unit_alive  # [N + enemies], allies first
            allies_dead = ~jnp.any(alive[:n_allies])
            enemies_dead = ~jnp.any(alive[n_allies:])
            terminated = allies_dead | enemies_dead
            # SMAX's own time limit: is_terminal uses step >= max_steps after the increment.
            truncated = (state.state.step >= env.max_steps) & ~terminated
            won = enemies_dead & ~allies_dead
            reward = rewards[agents[0]].astype(jnp.float32)  # identical for every ally
            return state, key, views(state), reward, terminated, truncated, won

        # carry = (env states [B, ...], PRNG keys [B, 2], views (obs [B, N, O], state [B, S],
        # avail [B, N, A])): everything that lives on the device between calls.
        def start(carry: Any, agents: Any, seeds: Any, mask: Any) -> tuple[Any, Any]:
            """Fresh episodes for ``mask [B]`` from ``seeds [B]`` uint32, with zeroed acting
            state (hidden, previous actions); returns carry, acting state."""
            fresh = jax.vmap(reset_one)(seeds)
            carry = jax_agents.select(mask, fresh, carry)
            keep = ~mask[:, None, None]
            return carry, tuple(x * keep for x in agents)

        def batched_reset(carry: Any, agents: Any, seeds: Any, mask: Any) -> tuple[Any, Any, Any]:
            """:func:`start`; returns carry, acting state and the packed views."""
            carry, agents = start(carry, agents, seeds, mask)
            return carry, agents, jax_agents.pack(*carry[2])

        def advance(carry: Any, actions: Any, active: Any) -> tuple[Any, Any]:
            """Step ``active [B]`` envs with ``actions [B, N]``; returns the carry and the
            flags (reward, terminated, truncated, won), each ``[B]``."""
            state, key, _ = carry
            new_state, new_key, new_views, reward, term, trunc, won = jax.vmap(step_one)(
                state, key, actions
            )
            # Inactive envs keep their state, so a finished episode's final arrays stay readable.
            carry = jax_agents.select(active, (new_state, new_key, new_views), carry)
            flags = (jnp.where(active, reward, 0.0), term & active, trunc & active, won & active)
            return carry, flags

        def batched_step(carry: Any, actions: Any, active: Any) -> tuple[Any, Any]:
            """Step ``active [B]`` envs with ``actions [B, N]``; returns carry, packed views
            (obs, state, avail) and flags (reward, terminated, truncated, won)."""
            carry, flags = advance(carry, actions, active)
            return carry, jax_agents.pack(*carry[2], *flags)

        self._reset_fn = jax.jit(batched_reset)
        self._step_fn = jax.jit(batched_step)
        self.steps_per_call = steps_per_call
        # the action selectors act() compiles (jax_agents.SELECTORS)
        self.selectors = frozenset({"epsilon_greedy", "softmax"})
        player = jax_agents.make_player(start, advance, env.max_steps, steps_per_call)
        self._play_fn = jax.jit(player, static_argnums=10)
        # acting inside the simulator (load_agents): flat weights, static options, acting
        # state (hidden [B, N, H], previous actions [B, N, A]) and exploration counter [2]
        self._params: Any = None
        self._agent_options: Any = None
        self._agents: Any = jax_agents.initial_state(num_envs, n_allies, 0, self._info.n_actions)
        self._counter: Any = jax_agents.exploration_counter(0)
        b, n, info = num_envs, n_allies, self._info
        # layouts of the packed arrays, (shape, dtype) of each piece: the views obs [B, N, O],
        # state [B, S], avail [B, N, A]; the flags reward, terminated, truncated, won, [B]
        # each; and a played step (a row of make_player's record)
        f32, bool_, int_ = np.float32, np.bool_, np.int64
        self._views_layout: _Layout = [((b, n, info.obs_dim), f32), ((b, info.state_dim), f32)]
        self._views_layout += [((b, n, info.n_actions), bool_)]
        self._flags_layout: _Layout = [((b,), f32), ((b,), bool_), ((b,), bool_), ((b,), bool_)]
        self._play_layout: _Layout = [((b,), bool_), ((b,), bool_), ((b,), int_), ((b, n), int_)]
        self._play_layout += self._views_layout + self._flags_layout + self._views_layout
        # A placeholder carry of the right shapes (traced, not compiled), then env i starts
        # from seed i so the arrays are defined before the runner's first reset.
        shapes = jax.eval_shape(jax.vmap(reset_one), jnp.zeros(num_envs, dtype=jnp.uint32))
        self._carry: Any = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        self._views: tuple[np.ndarray, np.ndarray, np.ndarray]
        self.reset(list(range(num_envs)), np.ones(num_envs, dtype=bool))

    def env_info(self) -> EnvInfo:
        """Sizes of the task: N allies, A = enemies + 5 actions, episode limit ``max_steps``."""
        return self._info

    def reset(self, seeds: Sequence[int], mask: np.ndarray) -> None:
        """Start new episodes in the envs with ``mask [B]``, env ``i`` seeded with ``seeds[i]``.

        Raises:
            ValueError: ``seeds`` or ``mask`` do not have ``B`` entries.
        """
        mask = np.asarray(mask, dtype=bool)
        if len(seeds) != self.num_envs or mask.shape != (self.num_envs,):
            raise ValueError(
                f"expected {self.num_envs} seeds and a mask of shape [{self.num_envs}], "
                f"got {len(seeds)} seeds and mask shape {list(mask.shape)}"
            )
        self._carry, self._agents, packed = self._reset_fn(
            self._carry, self._agents, self._seeds32(seeds), mask
        )
        obs, state, avail = self._split(packed, self._views_layout)
        self._views = (obs, state, avail)

    @staticmethod
    def _seeds32(seeds: Sequence[int]) -> np.ndarray:
        """``[B]`` uint32: PRNGKey takes 32-bit seeds; larger or negative ones wrap around."""
        return np.array([int(s) % 2**32 for s in seeds], dtype=np.uint32)

    @staticmethod
    def _split(packed: Any, layout: _Layout) -> list[np.ndarray]:
        """The arrays of a packed device array ``[..., P]`` (one row per step or not), as
        writable numpy with their leading axes; bools come back from float32 0/1."""
        flat = np.array(packed)  # one copy: JAX's own host buffer is read-only
        lead, arrays, start = flat.shape[:-1], [], 0
        for shape, dtype in layout:
            end = start + math.prod(shape)
            piece = flat[..., start:end].reshape(*lead, *shape)
            arrays.append(piece > 0.5 if dtype is np.bool_ else piece.astype(dtype, copy=False))
            start = end
        return arrays

    def observations(self) -> np.ndarray:
        """Per-agent observations, ``[B, N, O]`` float32."""
        return self._views[0]

    def states(self) -> np.ndarray:
        """SMAX world states, ``[B, S]`` float32."""
        return self._views[1]

    def avail_actions(self) -> np.ndarray:
        """Available actions, ``[B, N, A]`` bool (a dead unit may only take no-op 4)."""
        return self._views[2]

    def step(self, actions: np.ndarray, active: np.ndarray) -> VectorStep:
        """Step the envs with ``active [B]`` using ``actions [B, N]`` (int); no auto-reset.

        Returns:
            team rewards ``[B]``, ``terminated [B]`` (battle over), ``truncated [B]`` (time
            limit), and ``infos`` with ``{"battle_won": bool}`` for every env that ended.

        Raises:
            ValueError: ``actions`` is not ``[B, N]`` or ``active`` is not ``[B]``.
        """
        actions = np.asarray(actions)
        active = np.asarray(active, dtype=bool)
        expected = (self.num_envs, self._info.n_agents)
        if actions.shape != expected or active.shape != (self.num_envs,):
            raise ValueError(
                f"expected actions of shape {list(expected)} and active of shape "
                f"[{self.num_envs}], got {list(actions.shape)} and {list(active.shape)}"
            )
        self._carry, packed = self._step_fn(self._carry, actions.astype(np.int32), active)
        return self._stepped(self._split(packed, self._views_layout + self._flags_layout))

    def load_agents(self, weights: AgentWeights, seed: int) -> None:
        """Act for the agents from now on, with these weights (:meth:`play`).

        Called before each collection call with the current weights. The acting state
        (hidden state and previous action of each env's episode in flight) carries over from
        the last call and is zeroed when an episode starts; ``seed`` restarts the exploration
        key. The agents act by ``weights.selector`` (one of :attr:`selectors`).

        Raises:
            ValueError: ``weights.selector`` is not one of :attr:`selectors`.
        """
        import jax.numpy as jnp

        from qmix.envs import jax_agents

        if weights.selector not in self.selectors:
            raise ValueError(
                f"SMAX acts for the agents with {', '.join(sorted(self.selectors))} only, "
                f"not {weights.selector}"
            )
        flat, layout = jax_agents.flatten(weights)
        b, n, a = self.num_envs, self._info.n_agents, self._info.n_actions
        h = int(weights.arrays["fc1_w"].shape[1]) if weights.recurrent else 0
        if self._agents[0].shape != (b, n, h):
            self._agents = jax_agents.initial_state(b, n, h, a)
        self._params = jnp.asarray(flat)
        self._agent_options = (
            weights.recurrent,
            weights.last_action,
            weights.agent_id,
            weights.selector,
            layout,
        )
        self._counter = jax_agents.exploration_counter(seed)

    def play(
        self,
        seeds: Sequence[int],
        count: int,
        epsilon: float | None,
        active: np.ndarray,
        t: np.ndarray,
    ) -> PlayedSteps:
        """Up to ``steps_per_call`` batched steps in one compiled call, with the loaded agents
        acting by their selector (:class:`~qmix.envs.base.AgentActingVectorEnv`): idle envs
        start episodes from ``seeds`` (at most ``B * steps_per_call`` are read), the agents
        act and the active envs step, until ``count`` episodes have ended. ``epsilon`` ``None``
        is greedy: epsilon-greedy with 0, the softmax policy's argmax (passed as -1).

        Raises:
            RuntimeError: no agents were loaded.
            ValueError: ``active`` or ``t`` is not ``[B]``.
        """
        if self._params is None:
            raise RuntimeError("call load_agents(weights, seed) before play")
        active, t = np.asarray(active, dtype=bool), np.asarray(t)
        b = self.num_envs
        if active.shape != (b,) or t.shape != (b,):
            raise ValueError(
                f"expected active and t of shape [{b}], got {list(active.shape)} and "
                f"{list(t.shape)}"
            )
        # epsilon None is greedy: epsilon-greedy at 0 (as ever), the softmax path's -1 (at 0
        # the softmax policy still samples)
        greedy = -1.0 if self._agent_options[3] == "softmax" else 0.0
        eps = np.float32(greedy if epsilon is None else epsilon)
        queue = np.zeros(b * self.steps_per_call, np.uint32)  # [Q] the next reset seeds
        n_seeds = min(len(seeds), queue.size)
        queue[:n_seeds] = self._seeds32(seeds[:n_seeds])
        self._carry, self._agents, self._counter, record = self._play_fn(
            self._carry,
            self._agents,
            self._counter,
            self._params,
            eps,
            active,
            t.astype(np.int32),
            queue,
            np.int32(n_seeds),
            np.int32(min(count, 2**31 - 1)),
            self._agent_options,
        )
        arrays = self._split(record, self._play_layout)  # each [steps_per_call, B, ...]
        k = int(arrays[1].any(axis=1).sum())  # steps played: the rows where an env stepped
        started, stepped, t_, actions, obs, state, avail, reward, term, trunc, won, *after = (
            array[:k] for array in arrays
        )
        if k:  # the views after the last step (envs that did not step kept theirs in it)
            obs_now, state_now, avail_now = (array[-1] for array in after)
            self._views = (obs_now, state_now, avail_now)
        ends = zip(*np.nonzero(term | trunc), strict=True)
        return PlayedSteps(
            started=started,
            stepped=stepped,
            t=t_,
            actions=actions,
            obs=obs,
            state=state,
            avail=avail,
            reward=reward,
            terminated=term,
            truncated=trunc,
            next_obs=after[0],
            next_state=after[1],
            next_avail=after[2],
            infos={(int(i), int(j)): {"battle_won": bool(won[i, j])} for i, j in ends},
        )

    def _stepped(self, arrays: list[np.ndarray]) -> VectorStep:
        """Keep a step's new views; its flags as a :class:`VectorStep`."""
        obs, state, avail, reward, terminated, truncated, won = arrays
        self._views = (obs, state, avail)
        ended = terminated | truncated
        infos: list[dict[str, Any]] = [
            {"battle_won": bool(won[i])} if ended[i] else {} for i in range(self.num_envs)
        ]
        return VectorStep(reward=reward, terminated=terminated, truncated=truncated, infos=infos)

    def close(self) -> None:
        """Drop the batched JAX state (nothing else to release)."""
        self._carry = None


def make_smax(map_name: str = "3m", num_envs: int = 1, **kwargs: Any) -> VectorEnv:
    """Build ``num_envs`` SMAX battles on ``map_name`` against the heuristic enemy.

    Args:
        map_name: a SMAX scenario (``"3m"``, ``"2s3z"``, ``"3s_vs_5z"``, ...).
        num_envs: ``B``.
        **kwargs: forwarded to JaxMARL's ``HeuristicEnemySMAX``, e.g. ``max_steps``.

    Returns:
        a :class:`~qmix.envs.base.VectorEnv` over ``B`` environments.
    """
    return SMAXVectorEnv(map_name, num_envs, **kwargs)


def _world_state_scale(env: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-entry scale and floor of SMAX's world state ``[S]``.

    The floor is 0 for weapon cooldowns and -inf elsewhere: SMAX keeps counting a unit's
    cooldown down past 0 while it does not attack (we saw -11 within 60 random steps), so the
    raw feature is unbounded; any value <= 0 means "ready to fire" and is clipped to 0.

    Layout (``SMAX.get_world_state``): for each of the ``U`` units its ``own_features``
    (health fraction, x, y, weapon cooldown, unit-type one-hot), then the ``U`` unit teams,
    then the ``U`` unit types (integers).
    """
    features = list(env.own_features)
    units = int(env.state_size) // (len(features) + 2)
    per_unit = np.ones(len(features), np.float32)
    per_unit[features.index("position_x")] = 1.0 / float(env.map_width)
    per_unit[features.index("position_y")] = 1.0 / float(env.map_height)
    per_unit[features.index("weapon_cooldown")] = 1.0 / float(
        np.max(env.unit_type_weapon_cooldowns)
    )
    n_types = len(env.unit_type_weapon_cooldowns)
    types = np.full(units, 1.0 / max(n_types - 1, 1), np.float32)
    scale = np.concatenate([np.tile(per_unit, units), np.ones(units, np.float32), types])
    if scale.size != int(env.state_size):
        raise ValueError(f"unexpected SMAX world-state size {env.state_size} for {units} units")
    floor_unit = np.full(len(features), -np.inf, np.float32)
    floor_unit[features.index("weapon_cooldown")] = 0.0
    floor = np.full(scale.size, -np.inf, np.float32)
    floor[: units * len(features)] = np.tile(floor_unit, units)
    return scale, floor
