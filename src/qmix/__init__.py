"""qmix: cooperative multi-agent reinforcement learning by value factorisation.

Public API::

    import qmix
    cfg = qmix.make_config("qmix", "two_step", {"seed": 1})
    run = qmix.train(cfg)             # -> qmix.Run
    print(run.evaluate(episodes=8).summary())
    again = qmix.load(run.run_dir)    # networks and metrics back from disk
    qmix.resume(run.run_dir, total_env_steps=20_000)  # continue exactly where it stopped

Names are imported on first use, so ``import qmix.envs`` (in a worker process, say) does not
pull in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Config",
    "ConfigError",
    "DivergenceError",
    "EnvError",
    "EvalResult",
    "Run",
    "RunDirBusy",
    "RunInterrupted",
    "__version__",
    "load",
    "make_config",
    "restart",
    "resume",
    "train",
]

if TYPE_CHECKING:
    from qmix.checkpoint import CheckpointError
    from qmix.config import Config, ConfigError, make_config
    from qmix.envs.base import EnvError
    from qmix.learners import DivergenceError
    from qmix.run import EvalResult, Run, load
    from qmix.rundir import RunDirBusy, RunInterrupted
    from qmix.trainer import restart, resume, train

_LAZY = {
    "Config": "qmix.config",
    "ConfigError": "qmix.config",
    "make_config": "qmix.config",
    "CheckpointError": "qmix.checkpoint",
    "DivergenceError": "qmix.learners",
    "EnvError": "qmix.envs.base",
    "RunDirBusy": "qmix.rundir",
    "RunInterrupted": "qmix.rundir",
    "restart": "qmix.trainer",
    "EvalResult": "qmix.run",
    "Run": "qmix.run",
    "load": "qmix.run",
    "resume": "qmix.trainer",
    "train": "qmix.trainer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qmix' has no attribute {name!r}")
