"""Multi-agent environments: the protocol, built-in tasks and the task registry."""

from qmix.envs.base import MultiAgentEnv
from qmix.envs.registry import TASKS, make_env

__all__ = ["TASKS", "MultiAgentEnv", "make_env"]
