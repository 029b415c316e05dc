"""Multi-agent environments: the protocol, built-in tasks and the task registry."""

from qmix.envs.base import MultiAgentEnv, VectorEnv, VectorStep
from qmix.envs.registry import ENVS, make_env

__all__ = ["ENVS", "MultiAgentEnv", "VectorEnv", "VectorStep", "make_env"]
