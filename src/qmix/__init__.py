"""qmix: cooperative multi-agent reinforcement learning by value factorisation.

Public API::

    import qmix
    cfg = qmix.make_config("qmix", "two_step", {"seed": 1})
    run = qmix.train(cfg)
"""

from qmix.config import Config, ConfigError, make_config
from qmix.trainer import Run, train

__version__ = "0.1.0"

__all__ = ["Config", "ConfigError", "Run", "__version__", "make_config", "train"]
