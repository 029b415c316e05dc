"""Acting: agent-input construction, hidden state, exploration."""

from qmix.policy.controller import AgentController
from qmix.policy.exploration import LinearSchedule, epsilon_greedy, masked_argmax

__all__ = ["AgentController", "LinearSchedule", "epsilon_greedy", "masked_argmax"]
