"""Task registry: a literal table from environment name to its factory, imported lazily.

A name that contains ``:`` is itself a ``"module:factory"`` path, so a user's own environment
needs no registration: ``qmix train qmix my_package.my_env:make``. Factories of ordinary
environments return one :class:`~qmix.envs.base.MultiAgentEnv`; factories marked
``vectorised`` take ``num_envs`` and return a :class:`~qmix.envs.base.VectorEnv` (simulators
with a native batch dimension: SMAX under ``jax.vmap``, VMAS).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from qmix.envs.base import EnvError, MultiAgentEnv, VectorEnv, env_raised


@dataclass(frozen=True)
class EnvSpec:
    """Where an environment family lives and what it needs."""

    factory: str  # "module:callable"
    description: str
    vectorised: bool = False  # the factory takes num_envs and returns a VectorEnv
    extra: str = ""  # pip extra that installs its dependencies
    family: str = ""  # the family preset (presets/families) its tasks start from; "": none


ENVS: dict[str, EnvSpec] = {
    "two_step": EnvSpec("qmix.envs.matrix:make_two_step", "QMIX paper's two-step game"),
    "qtran_matrix": EnvSpec(
        "qmix.envs.matrix:make_qtran_game", "QTRAN's non-monotonic one-step matrix game"
    ),
    "climbing": EnvSpec("qmix.envs.matrix:make_climbing_game", "climbing one-step game"),
    "penalty": EnvSpec("qmix.envs.matrix:make_penalty_game", "penalty-k one-step game (k)"),
    "lbf": EnvSpec(
        "qmix.envs.gymnasium:make_lbf", "Level-Based Foraging (key)", extra="lbf", family="lbf"
    ),
    "rware": EnvSpec(
        "qmix.envs.gymnasium:make_rware",
        "multi-robot warehouse (key)",
        extra="rware",
        family="rware",
    ),
    "gymnasium": EnvSpec(
        "qmix.envs.gymnasium:make_gymnasium", "any multi-agent gymnasium task (key)", family="user"
    ),
    "mpe": EnvSpec(
        "qmix.envs.pettingzoo:make_mpe", "MPE via mpe2 (scenario)", extra="mpe", family="mpe"
    ),
    "smax": EnvSpec(
        "qmix.envs.smax:make_smax", "SMAX in JAX (map_name)", True, extra="smax", family="smax"
    ),
    "vmas": EnvSpec(
        "qmix.envs.vmas:make_vmas", "VMAS batched torch (scenario)", True, "vmas", family="vmas"
    ),
    "smac": EnvSpec(
        "qmix.envs.smac:make_smac", "SMAC, needs StarCraft II (map_name)", family="smac"
    ),
    "smacv2": EnvSpec(
        "qmix.envs.smac:make_smacv2",
        "SMACv2, needs StarCraft II (map_name, capability_config)",
        family="smac",
    ),
}


def env_spec(name: str) -> EnvSpec:
    """The spec of a registered name, or of a ``"module:factory"`` path."""
    if name in ENVS:
        return ENVS[name]
    if ":" not in name:
        known = ", ".join(sorted(ENVS))
        raise ValueError(f"unknown environment {name!r}: use one of {known}, or 'module:factory'")
    return EnvSpec(name, "user environment", family="user")


def resolve_factory(name: str) -> Any:
    """Import and return the factory callable for ``name``."""
    spec = env_spec(name)
    module_name, _, attr = spec.factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        hint = f"; install it with: pip install 'qmix[{spec.extra}]'" if spec.extra else ""
        message = f"environment {name!r}: cannot import module {module_name!r} ({err}){hint}"
        raise ValueError(message) from err
    try:
        return getattr(module, attr)
    except AttributeError as err:
        raise ValueError(f"environment {name!r}: module {module_name!r} has no {attr!r}") from err


def _call(name: str, factory: Any, kwargs: dict[str, Any]) -> Any:
    """``factory(**kwargs)``: a ``TypeError`` means bad arguments and a ``ValueError`` an
    argument the adapter refused (the user's config either way, as ``ValueError``); anything
    else the factory raises is the environment's own failure, an ``EnvError``."""
    try:
        return factory(**kwargs)
    except TypeError as err:
        raise ValueError(f"environment {name!r} rejected env_args {kwargs!r}: {err}") from err
    except (ValueError, EnvError):
        raise
    except Exception as err:
        raise env_raised(name, "make()", err) from err


def make_env(name: str, env_args: dict[str, Any] | None = None) -> MultiAgentEnv:
    """Build one environment ``name`` with keyword arguments ``env_args``.

    Raises:
        ValueError: unknown name, missing package (with the pip extra to install), bad
            arguments, or a vectorised-only environment.
        EnvError: the factory itself raised anything else (traceback in ``details``).
    """
    if env_spec(name).vectorised:
        raise ValueError(f"environment {name!r} is vectorised: use make_vector_env")
    env: MultiAgentEnv = _call(name, resolve_factory(name), dict(env_args or {}))
    return env


def make_vector_env(
    name: str,
    env_args: dict[str, Any] | None,
    num_envs: int,
    workers: int = 0,
    timeout: float = 60.0,
) -> VectorEnv:
    """Build ``num_envs`` environments of ``name`` as one :class:`VectorEnv`.

    Args:
        name: registered name or ``"module:factory"``.
        env_args: keyword arguments for the factory.
        num_envs: ``B``.
        workers: worker processes for ordinary environments; 0 steps them in this process.
            Ignored by vectorised simulators, which batch natively.
        timeout: seconds a worker (or, in this process, a batched reset or step) may take
            before it is reported as hung; in this process only where a ``SIGALRM`` timer can
            be armed (see :class:`~qmix.envs.vector.InProcessVectorEnv`).

    Raises:
        ValueError: unknown name, missing package, or bad arguments.
        EnvError: the environment failed while being built.
    """
    spec = env_spec(name)
    factory = resolve_factory(name)
    kwargs = dict(env_args or {})
    if spec.vectorised:
        vector: VectorEnv = _call(name, factory, {**kwargs, "num_envs": num_envs})
        return vector
    from qmix.envs.vector import InProcessVectorEnv, SubprocessVectorEnv

    # bad arguments fail here as ValueError, before any worker or guarded construction
    built = [_call(name, factory, kwargs)]
    if workers > 0:
        built.pop().close()
        return SubprocessVectorEnv(name, kwargs, num_envs, workers, timeout)

    def make() -> MultiAgentEnv:
        env: MultiAgentEnv = built.pop() if built else _call(name, factory, kwargs)
        return env

    return InProcessVectorEnv(make, num_envs, name=name, timeout=timeout)
