"""SMAC and SMACv2 (StarCraft II micromanagement) as a :class:`~qmix.envs.base.MultiAgentEnv`.

:class:`SMACAdapter` wraps any object with SMAC's API (``oxwhirl/smac`` ``StarCraft2Env``,
SMACv2's ``StarCraft2Env`` / ``StarCraftCapabilityEnvWrapper``): ``get_env_info()`` with
``n_agents, n_actions, obs_shape, state_shape, episode_limit``; ``reset()``; ``get_obs()``
(one array per agent); ``get_state()``; ``get_avail_actions()`` (one 0/1 list per agent; a dead
agent has only the no-op action 0); ``step(actions) -> (reward, terminated, info)``; ``close()``.

Facts from SMAC's source (``smac/env/starcraft2/starcraft2.py``, the same in SMACv2):

- The reward is already one team reward; ``info["battle_won"]`` is set on a win.
- At the time limit SMAC returns ``terminated=True`` and sets ``info["episode_limit"] = True``
  **only when built with** ``continuing_episode=True`` (that flag has no other effect).
  :func:`make_smac` therefore passes ``continuing_episode=True``, and the adapter turns a
  flagged time limit into ``truncated=True, terminated=False``. Wrapping an env built with
  ``continuing_episode=False``, the adapter counts steps instead: an unwon end at
  ``episode_limit`` steps is read as the time limit (a defeat on exactly that step would then
  be misread as one).
- When the SC2 connection fails, SMAC restarts the game and returns ``(0, True, {})``; the
  adapter passes that on as ``terminated``.

Seeding: SMAC takes its seed at construction (``seed=``, handed to SC2 when the game is
launched at the first ``reset()``) and cannot be reseeded afterwards, so ``reset(seed)``
ignores ``seed``; pass ``seed`` to :func:`make_smac` instead. SMACv2 draws its teams and start
positions from unseeded generators, so its episodes are not reproducible from any seed.

Nothing here was run against StarCraft II: the adapter is tested against a stand-in with
SMAC's documented API (``tests/test_env_smac.py``).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from qmix.types import EnvInfo, StepResult

_INFO_KEYS = ("n_agents", "n_actions", "obs_shape", "state_shape", "episode_limit")
_SMAC_REPO = {1: "oxwhirl/smac", 2: "oxwhirl/smacv2"}


def _size(shape: Any) -> int:
    """SMAC gives sizes as ints; accept a shape tuple too."""
    return int(np.prod(shape))


class SMACAdapter:
    """Translate an env with SMAC's API into the :class:`~qmix.envs.base.MultiAgentEnv` protocol.

    Args:
        env: a SMAC / SMACv2 environment (or anything with the same methods).

    Raises:
        ValueError: ``env.get_env_info()`` lacks one of SMAC's keys.
    """

    def __init__(self, env: Any) -> None:
        info = env.get_env_info()
        missing = [key for key in _INFO_KEYS if key not in info]
        if missing:
            raise ValueError(f"get_env_info() lacks {', '.join(missing)}: is this a SMAC env?")
        self.env = env
        self._info = EnvInfo(
            n_agents=int(info["n_agents"]),
            n_actions=int(info["n_actions"]),
            obs_dim=_size(info["obs_shape"]),
            state_dim=_size(info["state_shape"]),
            episode_limit=int(info["episode_limit"]),
        )
        # SMAC flags its time limit in info only when built with continuing_episode=True.
        self._flags_time_limit = bool(getattr(env, "continuing_episode", False))
        self._t = 0
        self._obs: np.ndarray | None = None  # [N, O]
        self._state = np.zeros(self._info.state_dim, np.float32)  # [S]
        self._avail = np.ones((self._info.n_agents, self._info.n_actions), bool)  # [N, A]

    def _read(self) -> None:
        """Copy SMAC's observations, state and masks once per step (each call walks SC2 units)."""
        n, a, o, s = (
            self._info.n_agents,
            self._info.n_actions,
            self._info.obs_dim,
            self._info.state_dim,
        )
        obs = np.asarray(self.env.get_obs(), dtype=np.float32).reshape(n, -1)
        state = np.asarray(self.env.get_state(), dtype=np.float32).reshape(-1)
        avail = np.asarray(self.env.get_avail_actions()).reshape(n, -1).astype(bool)
        if obs.shape != (n, o) or state.shape != (s,) or avail.shape != (n, a):
            raise ValueError(
                f"expected obs [{n}, {o}], state [{s}], avail [{n}, {a}] from get_env_info(), "
                f"got {list(obs.shape)}, {list(state.shape)}, {list(avail.shape)}"
            )
        self._obs, self._state, self._avail = obs, state, avail

    def env_info(self) -> EnvInfo:
        """Sizes from SMAC's ``get_env_info()``; ``episode_limit`` is the map's time limit."""
        return self._info

    def reset(self, seed: int | None = None) -> None:
        """Start a new battle. ``seed`` is ignored: SMAC is seeded once, at construction."""
        del seed  # SC2 cannot be reseeded without relaunching it (see the module docstring)
        self.env.reset()
        self._t = 0
        self._read()

    def observations(self) -> np.ndarray:
        """Per-agent observations ``[N, O]`` float32 (all zeros for a dead agent, as in SMAC)."""
        if self._obs is None:
            raise RuntimeError("call reset() before reading observations")
        return self._obs

    def state(self) -> np.ndarray:
        """SMAC's global state ``[S]`` float32."""
        return self._state

    def avail_actions(self) -> np.ndarray:
        """``[N, A]`` bool; a dead agent has only the no-op action 0."""
        return self._avail

    def step(self, actions: np.ndarray) -> StepResult:
        """Apply ``actions [N]``; SMAC's time limit comes back as ``truncated``.

        Returns:
            SMAC's team reward, ``terminated`` (battle won, lost or drawn by elimination),
            ``truncated`` (the map's time limit), and SMAC's ``info`` unchanged.
        """
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        joint = np.asarray(actions).reshape(-1)
        if joint.shape != (self._info.n_agents,):
            raise ValueError(f"expected {self._info.n_agents} actions, got {list(joint.shape)}")
        reward, ended, info = self.env.step([int(a) for a in joint])
        self._t += 1
        info = dict(info or {})
        won = bool(info.get("battle_won", False))
        time_limit = bool(info.get("episode_limit", False))
        if ended and not self._flags_time_limit and self._t >= self._info.episode_limit:
            time_limit = True  # SMAC ends at its limit without saying so: count the steps
        truncated = time_limit and not won
        terminated = bool(ended) and not truncated
        self._read()  # the arrays after the last step are kept for bootstrapping
        return StepResult(float(reward), terminated, truncated, info)

    def render(self) -> Any:
        """SMAC's own ``render()``, where it has one."""
        render = getattr(self.env, "render", None)
        return render() if callable(render) else None

    def close(self) -> None:
        """Close StarCraft II."""
        self.env.close()


def _install_error(version: int, err: ImportError) -> ValueError:
    repo = _SMAC_REPO[version]
    package = "smac" if version == 1 else "smacv2"
    if version == 1 and err.name == "smac.env":
        found = "the installed 'smac' is SMAC3 (hyperparameter optimisation), not StarCraft SMAC"
    elif err.name in (package, f"{package}.env"):
        found = f"StarCraft II {'SMAC' if version == 1 else 'SMACv2'} is not installed"
    else:
        found = f"importing {package}.env failed ({err})"
    pypi = ", not the PyPI 'smac', which is SMAC3" if version == 1 else ""
    return ValueError(
        f"{found}: install it from its repository (pip install git+https://github.com/{repo}.git"
        f"{pypi}); it also needs the StarCraft II binary (set SC2PATH)"
    )


def _check_map(package: str, map_name: str) -> None:
    """Unknown map names fail here, listing SMAC's maps, instead of as a KeyError inside SMAC."""
    try:
        maps = importlib.import_module(f"{package}.env.starcraft2.maps.smac_maps")
        known = sorted(maps.get_smac_map_registry())
    except (ImportError, AttributeError):
        return  # a SMAC variant without that registry: let it check the name itself
    if map_name not in known:
        raise ValueError(f"unknown SMAC map {map_name!r}: use one of {', '.join(known)}")


def make_smac(
    map_name: str = "3m", seed: int | None = None, version: int = 1, **kwargs: Any
) -> SMACAdapter:
    """Build a SMAC (``version=1``) or SMACv2 (``version=2``) battle on ``map_name``.

    Args:
        map_name: SMAC map, e.g. ``"3m"``, ``"8m"``, ``"2s3z"``; SMACv2: ``"10gen_protoss"``...
        seed: SC2's game seed, fixed for the env's life (``reset(seed)`` cannot change it).
        version: 1 for ``smac.env.StarCraft2Env``, 2 for SMACv2's
            ``StarCraftCapabilityEnvWrapper`` (needs ``capability_config``).
        **kwargs: SMAC's constructor arguments (``difficulty``, ``reward_sparse``, ...).
            ``continuing_episode`` defaults to True so SMAC flags its time limit.

    Raises:
        ValueError: StarCraft II SMAC not importable (one line saying how to install it), an
            unknown map, or SMACv2 without ``capability_config``.
    """
    if version not in _SMAC_REPO:
        raise ValueError(f"version must be 1 (SMAC) or 2 (SMACv2), got {version!r}")
    package = "smac" if version == 1 else "smacv2"
    try:
        module = importlib.import_module(f"{package}.env")
    except ImportError as err:
        raise _install_error(version, err) from None
    if version == 1 and not hasattr(module, "StarCraft2Env"):
        raise _install_error(version, ImportError(name="smac.env"))
    if version == 2 and "capability_config" not in kwargs:
        raise ValueError(
            "SMACv2 needs capability_config (unit types, start positions): "
            "see the smacv2 repository's example configs"
        )
    _check_map(package, map_name)
    kwargs.setdefault("continuing_episode", True)
    cls = module.StarCraft2Env if version == 1 else module.StarCraftCapabilityEnvWrapper
    return SMACAdapter(cls(map_name=map_name, seed=seed, **kwargs))


def make_smacv2(
    map_name: str = "10gen_protoss", seed: int | None = None, **kwargs: Any
) -> SMACAdapter:
    """SMACv2: :func:`make_smac` with ``version=2`` (``capability_config`` is required)."""
    return make_smac(map_name, seed=seed, version=2, **kwargs)
