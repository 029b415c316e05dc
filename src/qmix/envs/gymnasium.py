"""Adapters for multi-agent tasks registered with gymnasium: LBF, RWARE, or any such task.

A multi-agent gymnasium task here is one whose observation and action spaces are
``gymnasium.spaces.Tuple`` with one entry per agent, whose actions are ``Discrete``, and whose
``step`` returns one reward per agent. The team reward is the **sum** of the agents' rewards
(EPyMARL's common-reward convention). The global state is the concatenation of the (padded)
agent observations ``[N * O]``; the LBF and RWARE adapters can read the state from the
simulator instead (``state="simulator"``, which their family presets set): every player and
food (:class:`LBFEnv`), every robot and shelf (:class:`RWAREEnv`). Neither package offers a
state vector of its own.

Time limits (DESIGN.md section 3): LBF 2.0.0 and RWARE 2.0.0 both report their step limit as
``terminated=True`` with ``truncated=False``. :class:`LBFEnv` turns it into a truncation unless
all food was collected (LBF's only true terminal); :class:`RWAREEnv` never has a true terminal,
so every end (``max_steps``, or ``max_inactivity_steps`` without a delivery) is a truncation.
A ``truncated`` flag from gymnasium's own ``TimeLimit`` wrapper is kept as a truncation, and the
adapter truncates at ``episode_limit`` steps itself whatever the task does.

Seeding: ``reset(seed)`` passes the seed to the gymnasium env's ``reset(seed=...)``. LBF 2.0.0's
reset also depends on where players stood at the end of the previous episode; :class:`LBFEnv`
clears that so the same seed always gives the same episode.

Rendering: ``render()`` returns an RGB frame ``[H, W, 3]`` uint8. LBF and RWARE draw with
pyglet (no ``render_mode`` needed); without an X display pyglet is switched to headless (EGL)
rendering. Other tasks need ``render_mode="rgb_array"`` passed to :func:`make_gymnasium`.

The arrays returned by ``observations()``, ``state()`` and ``avail_actions()`` are the adapter's
own preallocated buffers (no copy per step): they are overwritten by the next ``step``/``reset``,
so copy them to keep them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from qmix.types import EnvInfo, StepResult

_PER_AGENT_TYPES = (list, tuple, np.ndarray)  # per-agent rewards; anything else is a team reward


class GymnasiumMultiAgentEnv:
    """A :class:`~qmix.envs.base.MultiAgentEnv` over one multi-agent gymnasium env.

    Agents with smaller observations or fewer actions are zero-padded to the largest; padded
    actions are unavailable. The env's ``terminated`` flag is trusted unless a subclass
    overrides :meth:`_is_true_terminal`.

    Args:
        env: a ``gymnasium.Env`` (possibly wrapped) with ``Tuple`` observation and action spaces
            of one entry per agent; actions ``Discrete`` starting at 0.
        episode_limit: the most transitions an episode may have; the adapter truncates there.
    """

    def __init__(self, env: Any, episode_limit: int) -> None:
        from gymnasium import spaces

        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(obs_space, spaces.Tuple) or not isinstance(act_space, spaces.Tuple):
            raise ValueError(
                "expected Tuple observation and action spaces (one entry per agent), got "
                f"{type(obs_space).__name__} and {type(act_space).__name__}"
            )
        if len(obs_space) != len(act_space):
            raise ValueError(
                f"expected one observation and one action space per agent, got "
                f"{len(obs_space)} and {len(act_space)}"
            )
        for space in act_space:
            if not isinstance(space, spaces.Discrete) or int(space.start) != 0:
                raise ValueError(f"expected Discrete action spaces starting at 0, got {space}")
        if not isinstance(episode_limit, int) or episode_limit < 1:
            raise ValueError(f"episode_limit must be a positive int, got {episode_limit!r}")

        self._env = env
        self._unwrapped = env.unwrapped
        self._spaces = tuple(obs_space)
        n = len(obs_space)
        self._n_actions = np.array([int(s.n) for s in act_space])  # [N]
        obs_sizes = [int(spaces.flatdim(s)) for s in obs_space]
        self._info = EnvInfo(
            n_agents=n,
            n_actions=int(self._n_actions.max()),
            obs_dim=max(obs_sizes),
            state_dim=n * max(obs_sizes),
            episode_limit=episode_limit,
        )
        self._padded_actions = bool((self._n_actions < self._info.n_actions).any())

        # Preallocated buffers, filled in place every step; the state is a view of the
        # observation buffer (concatenated observations), so it costs nothing to keep.
        self._obs = np.zeros((n, self._info.obs_dim), dtype=np.float32)  # [N, O]
        self._state = self._obs.reshape(-1)  # [S] = [N * O], a view
        self._static_avail = np.arange(self._info.n_actions) < self._n_actions[:, None]  # [N, A]
        self._avail = self._static_avail.copy()  # [N, A]
        # Box observations are written through views shaped like the space (no flatten call);
        # other spaces (Dict, Discrete, ...) go through gymnasium.spaces.flatten.
        self._obs_views: list[np.ndarray | None] = [
            self._obs[i, :size].reshape(s.shape) if isinstance(s, spaces.Box) else None
            for i, (s, size) in enumerate(zip(self._spaces, obs_sizes, strict=True))
        ]
        self._t = 0
        self._ended = True

    # -- hooks for task-specific adapters --------------------------------------------------
    def _is_true_terminal(self) -> bool:
        """Whether an env-reported ``terminated`` is a true terminal state (default: trust it)."""
        return True

    def _update_avail(self) -> None:
        """Refresh ``self._avail [N, A]`` after reset/step (default: the static padding mask)."""

    def _write_state(self) -> None:
        """Refresh ``self._state`` after reset/step (default: nothing, the state being a view of
        the observations)."""

    def _frame(self) -> Any:
        """One RGB frame from the env (default: gymnasium's ``render()``)."""
        if getattr(self._env, "render_mode", None) != "rgb_array":
            raise RuntimeError("render() needs the env made with render_mode='rgb_array'")
        return self._env.render()

    # -- MultiAgentEnv -----------------------------------------------------------------------
    def env_info(self) -> EnvInfo:
        """Sizes of the task (padded to the largest agent)."""
        return self._info

    def _write_obs(self, obs: Any) -> None:
        from gymnasium.spaces import flatten

        for i, o in enumerate(obs):
            view = self._obs_views[i]
            if view is not None:
                view[...] = o
            else:
                flat: np.ndarray = np.asarray(flatten(self._spaces[i], o)).reshape(-1)
                self._obs[i, : flat.size] = flat

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; ``seed`` goes to the gymnasium env's ``reset(seed=...)``."""
        obs, _ = self._env.reset(seed=seed)
        self._write_obs(obs)
        self._write_state()
        self._update_avail()
        self._t = 0
        self._ended = False

    def observations(self) -> np.ndarray:
        """Per-agent observations ``[N, O]`` float32 (the adapter's buffer; copy to keep)."""
        return self._obs

    def state(self) -> np.ndarray:
        """The global state ``[S]`` float32 (the adapter's buffer; copy to keep): by default the
        concatenated agent observations ``[N * O]`` (a view of their buffer)."""
        return self._state

    def avail_actions(self) -> np.ndarray:
        """Available actions ``[N, A]`` bool (the adapter's buffer; copy to keep)."""
        return self._avail

    def step(self, actions: np.ndarray) -> StepResult:
        """Apply ``actions [N]``; the team reward is the sum of the agents' rewards.

        Raises:
            RuntimeError: the episode already ended (call ``reset`` first).
            ValueError: wrong number of actions, or a padded (non-existent) action.
        """
        if self._ended:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        acts = np.asarray(actions).reshape(-1)  # [N]
        if acts.shape[0] != self._info.n_agents:
            raise ValueError(f"expected {self._info.n_agents} actions, got {acts.shape[0]}")
        if self._padded_actions and (acts >= self._n_actions).any():
            raise ValueError(f"actions {acts.tolist()} exceed agents' n_actions {self._n_actions}")
        obs, rewards, terminated, truncated, info = self._env.step(acts.tolist())
        self._t += 1
        self._write_obs(obs)
        self._write_state()
        self._update_avail()
        env_ended = bool(terminated)
        terminated = env_ended and self._is_true_terminal()
        # An env end that is not a true terminal (a step limit reported as terminated), a
        # TimeLimit wrapper's truncation, or our own episode_limit: all are time limits.
        truncated = not terminated and (
            env_ended or bool(truncated) or self._t >= self._info.episode_limit
        )
        self._ended = terminated or truncated
        # Builtin sum: np.sum on a short list costs ~5 us, more than the rest of the adapter.
        is_vector = isinstance(rewards, _PER_AGENT_TYPES)
        reward = float(sum(rewards)) if is_vector else float(rewards)
        return StepResult(reward=reward, terminated=terminated, truncated=truncated, info=info)

    def render(self) -> np.ndarray:
        """The current frame as RGB ``[H, W, 3]`` uint8 (may need a display and pyglet)."""
        frame = np.asarray(self._frame(), dtype=np.uint8)
        if frame.ndim != 3 or frame.shape[-1] != 3:
            raise RuntimeError(f"expected an RGB frame [H, W, 3], got shape {list(frame.shape)}")
        return frame

    def close(self) -> None:
        """Close the gymnasium env (and its viewer, if any)."""
        self._env.close()


def _check_state_mode(state: str) -> None:
    """``env_args.state``: ``simulator`` or ``observations``."""
    if state not in ("simulator", "observations"):
        raise ValueError(f"state must be 'simulator' or 'observations', got {state!r}")


class LBFEnv(GymnasiumMultiAgentEnv):
    """Level-Based Foraging (lbforaging 2.0.0).

    Masks come from LBF's per-agent valid actions (``ForagingEnv._valid_actions``, the list
    LBF itself checks actions against); ``NONE`` (action 0) is always valid. The only true
    terminal is "all food collected"; LBF's ``max_episode_steps`` end is a truncation.

    With ``normalize_obs`` (the default) every observation entry is divided by its bound in
    LBF's observation space (coordinates by ``field_size - 1``, levels by the largest level),
    so inputs lie in [-1, 1] and the "not visible" marker -1 stays negative. Raw LBF inputs
    reach 7 on 8x8 grids, which makes QMIX's hypernetworks start with ``|Q_tot|`` around 30
    for rewards of at most 1 (docs/implementation.md, "Input scale").

    The global state with ``state="simulator"`` (what the LBF family preset sets) is read from
    the simulator, whatever the agents' sight: every player's ``(row, col, level)`` in agent
    order, then every food's ``(row, col, level)`` in a fixed order for the episode (where the
    foods lay at reset, row by row), ``(-1, -1, 0)`` once eaten and for food slots the episode
    did not fill; ``[3 N + 3 F]`` for ``F`` = LBF's ``max_num_food``, absolute coordinates,
    scaled like the observations.
    ``state="observations"`` (the default: what this adapter gave before, so that runs made
    before resume unchanged) gives the concatenated observations, each listing its agent first.
    """

    def __init__(self, env: Any, normalize_obs: bool = True, state: str = "observations") -> None:
        from lbforaging.foraging.environment import Action

        _check_state_mode(state)
        # Enum.value is a slow property; a dict lookup per valid action is ~5x cheaper.
        self._action_index = {action: action.value for action in Action}
        self._scale: np.ndarray | None = None
        self._simulator_state = False
        super().__init__(env, episode_limit=int(env.unwrapped._max_episode_steps))
        if normalize_obs:
            scale = np.ones_like(self._obs)  # [N, O]
            for i, space in enumerate(env.observation_space):
                high = np.asarray(space.high, dtype=np.float32).reshape(-1)
                scale[i, : high.size] = 1.0 / np.maximum(np.abs(high), 1.0)
            self._scale = scale
        if state == "simulator":
            lbf = self._unwrapped
            n, food = len(lbf.players), int(lbf.max_num_food)
            high = np.asarray(env.observation_space[0].high, dtype=np.float32).reshape(-1)
            rows, cols = lbf.field.shape
            # scale of (row, col, level): the observations' bounds, or 1 without normalize_obs
            grid = [rows - 1, cols - 1] if normalize_obs else [1, 1]
            levels = [float(max(lbf.max_player_level)), float(high[2])] if normalize_obs else [1, 1]
            self._player_scale = np.array([*grid, levels[0]], dtype=np.float32)  # [3]
            self._food_scale = np.array([*grid, levels[1]], dtype=np.float32)  # [3]
            self._state = np.zeros(3 * n + 3 * food, dtype=np.float32)  # [S]
            self._food_cells = np.zeros((0, 2), dtype=np.int64)  # [F', 2] this episode's foods
            self._n_food = food
            self._info = dataclasses.replace(self._info, state_dim=int(self._state.size))
            self._simulator_state = True  # written from the first reset on

    def _write_state(self) -> None:
        if not self._simulator_state:
            return
        lbf = self._unwrapped
        players = np.array(
            [[*p.position, p.level] for p in lbf.players], dtype=np.float32
        )  # [N, 3]
        foods = np.tile(np.array([-1.0, -1.0, 0.0], dtype=np.float32), (self._n_food, 1))
        cells = self._food_cells  # [F', 2]
        if len(cells):
            levels = lbf.field[cells[:, 0], cells[:, 1]].astype(np.float32)  # [F']
            left = levels > 0
            foods[: len(cells)][left] = np.column_stack([cells, levels])[left] / self._food_scale
        n = len(players)
        self._state[: 3 * n] = (players / self._player_scale).reshape(-1)
        self._state[3 * n :] = foods.reshape(-1)

    def _write_obs(self, obs: Any) -> None:
        super()._write_obs(obs)
        if self._scale is not None:
            self._obs *= self._scale  # in place: state() is a view of this buffer

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; the same seed gives the same episode.

        lbforaging 2.0.0 places players avoiding cells where players stood at the end of the
        previous episode (``_is_empty_location`` reads the stale positions), so ``reset(seed)``
        alone depends on history; clearing the positions first makes it a function of the seed.
        """
        for player in self._unwrapped.players:
            player.position = None
        self._food_cells = np.zeros((0, 2), dtype=np.int64)
        super().reset(seed)
        if self._simulator_state:  # this episode's foods, in a fixed order, then the state
            self._food_cells = np.argwhere(self._unwrapped.field > 0)[: self._n_food]
            self._write_state()

    def _is_true_terminal(self) -> bool:
        # ForagingEnv.step: game over = field.sum() == 0 (no food left) or the step limit.
        return not self._unwrapped.field.any()

    def _update_avail(self) -> None:
        valid = self._unwrapped._valid_actions  # {Player: [Action, ...]}, rebuilt every step
        index = self._action_index
        rows = []
        for player in self._unwrapped.players:
            row = [False] * len(index)
            row[0] = True  # NONE is always valid in LBF; never leave an agent without actions
            for action in valid[player]:
                row[index[action]] = True
            rows.append(row)
        self._avail[...] = rows  # one numpy call: ~3x faster than per-element writes

    def _frame(self) -> Any:
        # LBF's render ignores render_mode and takes the mode as an argument (needs pyglet).
        _headless_pyglet()
        return self._unwrapped.render(mode="rgb_array")


class RWAREEnv(GymnasiumMultiAgentEnv):
    """Multi-robot warehouse (rware 2.0.0): every action always available, no true terminal.

    RWARE ends an episode only at ``max_steps`` or after ``max_inactivity_steps`` without a
    delivery; neither is a state of the task, so both are reported as truncations.

    The global state with ``state="simulator"`` (what the RWARE family preset sets) is read from
    the simulator, whatever the robots' sensor range: every robot's ``(row, col)``, its direction
    one-hot (up, down, left, right) and whether it carries a shelf, then every shelf's
    ``(row, col)`` and whether it is requested, in the order of the shelves' ids (their places
    at reset, row by row); ``[7 N + 3 M]`` for ``M`` shelves, coordinates divided by the
    grid's largest row and column. ``state="observations"`` (the default, as before) gives the
    concatenated observations.
    """

    def __init__(self, env: Any, state: str = "observations") -> None:
        max_steps = env.unwrapped.max_steps
        if not max_steps:
            raise ValueError(f"RWARE needs a positive max_steps (its time limit), got {max_steps}")
        _check_state_mode(state)
        self._simulator_state = False
        super().__init__(env, episode_limit=int(max_steps))
        if state == "simulator":
            warehouse = self._unwrapped
            rows, cols = warehouse.grid_size
            self._grid_scale = np.array([max(rows - 1, 1), max(cols - 1, 1)], dtype=np.float32)
            shelves = int((warehouse.highways == 0).sum())  # RWARE puts a shelf on each such cell
            self._state = np.zeros(7 * len(self._obs) + 3 * shelves, dtype=np.float32)  # [S]
            self._info = dataclasses.replace(self._info, state_dim=int(self._state.size))
            self._simulator_state = True  # written from the first reset on

    def _write_state(self) -> None:
        if not self._simulator_state:
            return
        warehouse = self._unwrapped
        robots = np.zeros((len(warehouse.agents), 7), dtype=np.float32)  # [N, 7]
        for i, robot in enumerate(warehouse.agents):
            robots[i, :2] = (robot.y, robot.x)
            robots[i, 2 + robot.dir.value] = 1.0
            robots[i, 6] = robot.carrying_shelf is not None
        robots[:, :2] /= self._grid_scale
        requested = {id(shelf) for shelf in warehouse.request_queue}
        shelves = np.array(
            [(shelf.y, shelf.x, id(shelf) in requested) for shelf in warehouse.shelfs],
            dtype=np.float32,
        )  # [M, 3]
        shelves[:, :2] /= self._grid_scale
        self._state[: robots.size] = robots.reshape(-1)
        self._state[robots.size :] = shelves.reshape(-1)

    def _is_true_terminal(self) -> bool:
        return False

    def _frame(self) -> Any:
        # RWARE's render takes the mode as an argument (needs pyglet).
        _headless_pyglet()
        return self._unwrapped.render(mode="rgb_array")


def _headless_pyglet() -> None:
    """Let LBF/RWARE's pyglet viewers draw off-screen (EGL) when there is no X display."""
    import importlib
    import os
    import sys

    # The option only counts before pyglet.window is first imported.
    no_display = sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
    if no_display and "pyglet.window" not in sys.modules:
        importlib.import_module("pyglet").options["headless"] = True


def _gym_make(key: Any, kwargs: dict[str, Any], example: str) -> Any:
    """``gymnasium.make`` with a one-line ValueError for unknown ids.

    The passive env checker is off by default: it assumes single-agent scalar rewards and
    warns on every multi-agent env.
    """
    import gymnasium

    kwargs.setdefault("disable_env_checker", True)
    try:
        return gymnasium.make(key, **kwargs)
    except gymnasium.error.Error as err:
        name = getattr(key, "id", key)
        raise ValueError(f"unknown task {name!r} ({err}); ids look like {example!r}") from err


def make_gymnasium(
    key: str, time_limit: int | None = None, **kwargs: Any
) -> GymnasiumMultiAgentEnv:
    """Any multi-agent gymnasium task (Tuple spaces, per-agent rewards summed into the team's).

    The env's ``terminated`` is trusted as a true terminal: for tasks that report their time
    limit as ``terminated`` (LBF, RWARE) use :func:`make_lbf` / :func:`make_rware` instead.

    Args:
        key: a gymnasium id (``"module:Env-v0"`` imports ``module`` first).
        time_limit: episode limit in steps; defaults to the registered ``max_episode_steps``
            (the TimeLimit wrapper's). When both exist the smaller one is used.
        **kwargs: passed to ``gymnasium.make`` (e.g. ``render_mode="rgb_array"``).

    Returns:
        the adapter, episode limit = ``time_limit`` or the registered one.
    """
    env = _gym_make(key, kwargs, "package:Env-v0 (imports package, which registers the id)")
    registered = env.spec.max_episode_steps if env.spec is not None else None
    limits = [v for v in (time_limit, registered) if v is not None]
    if not limits:
        env.close()
        raise ValueError(f"task {key!r} has no registered max_episode_steps: pass time_limit")
    try:
        return GymnasiumMultiAgentEnv(env, episode_limit=int(min(limits)))
    except ValueError as err:
        env.close()
        raise ValueError(
            f"task {key!r} is not a multi-agent task this adapter takes: {err}"
        ) from err


def make_lbf(
    key: str = "Foraging-8x8-2p-2f-coop-v3",
    normalize_obs: bool = True,
    state: str = "observations",
    **kwargs: Any,
) -> LBFEnv:
    """Level-Based Foraging; episode limit = LBF's ``max_episode_steps`` (50 when registered).

    Args:
        key: an lbforaging id, e.g. ``"Foraging-8x8-2p-2f-coop-v3"`` or
            ``"Foraging-2s-10x10-3p-3f-v3"``.
        normalize_obs: divide each observation entry by its bound (inputs in [-1, 1]).
        state: ``"simulator"`` (every player and food, whatever the sight; see
            :class:`LBFEnv`; the family preset's) or ``"observations"`` (the concatenated
            observations; the default, as before).
        **kwargs: ``ForagingEnv`` arguments overriding the registered ones (``max_episode_steps``
            included: it is given to LBF itself, not to a gymnasium TimeLimit wrapper), or
            ``gymnasium.make`` options.

    Returns:
        the adapter: masks from LBF's valid actions, the state as ``state`` says.
    """
    import gymnasium
    import lbforaging  # noqa: F401  (importing it registers the Foraging-* ids)

    target: Any = key
    if "max_episode_steps" in kwargs:
        # gymnasium.make would take max_episode_steps for a TimeLimit wrapper, leaving LBF's own
        # (terminated) limit at 50; put it in the constructor arguments instead.
        limit = kwargs.pop("max_episode_steps")
        try:
            spec = gymnasium.spec(key)
        except gymnasium.error.Error as err:
            raise ValueError(f"unknown LBF task {key!r} ({err})") from err
        target = dataclasses.replace(spec, kwargs={**spec.kwargs, "max_episode_steps": limit})
    if not str(getattr(target, "id", target)).startswith("Foraging"):
        raise ValueError(f"unknown LBF task {key!r}: ids look like 'Foraging-8x8-2p-2f-coop-v3'")
    return LBFEnv(_gym_make(target, kwargs, "Foraging-8x8-2p-2f-coop-v3"), normalize_obs, state)


def make_rware(
    key: str = "rware-tiny-2ag-v2", state: str = "observations", **kwargs: Any
) -> RWAREEnv:
    """Multi-robot warehouse; episode limit = RWARE's ``max_steps`` (500 when registered).

    Args:
        key: an rware id, e.g. ``"rware-tiny-2ag-v2"``, ``"rware-small-4ag-hard-v2"``.
        state: ``"simulator"`` (every robot and shelf, whatever the sensor range; see
            :class:`RWAREEnv`) or ``"observations"`` (the concatenated observations).
        **kwargs: ``Warehouse`` arguments overriding the registered ones (e.g. ``max_steps``),
            or ``gymnasium.make`` options. Only ``msg_bits=0`` (Discrete actions) is supported.

    Returns:
        the adapter: every action available, the state as ``state`` says.
    """
    import rware  # noqa: F401  (importing it registers the rware-* ids)

    if not key.startswith("rware"):
        raise ValueError(f"unknown RWARE task {key!r}: ids look like 'rware-tiny-2ag-v2'")
    return RWAREEnv(_gym_make(key, kwargs, "rware-tiny-2ag-v2"), state)
