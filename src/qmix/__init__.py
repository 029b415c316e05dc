"""qmix: cooperative multi-agent reinforcement learning by value factorisation.

Public API::

    import qmix
    cfg = qmix.make_config("qmix", "two_step", {"seed": 1})
    run = qmix.train(cfg)

Names are imported on first use, so ``import qmix.envs`` (in a worker process, say) does not
pull in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Config", "ConfigError", "Run", "__version__", "make_config", "train"]

if TYPE_CHECKING:
    from qmix.config import Config, ConfigError, make_config
    from qmix.trainer import Run, train

_LAZY = {
    "Config": "qmix.config",
    "ConfigError": "qmix.config",
    "make_config": "qmix.config",
    "Run": "qmix.trainer",
    "train": "qmix.trainer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qmix' has no attribute {name!r}")
