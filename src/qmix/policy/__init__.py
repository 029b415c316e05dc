"""Acting: agent-input construction, hidden state, action selection and exploration."""

from qmix.policy.controller import AgentController
from qmix.policy.exploration import LinearSchedule, epsilon_greedy, masked_argmax
from qmix.policy.selectors import (
    ActionSelector,
    EpsilonGreedy,
    SoftmaxPolicy,
    build_selector,
    policy_probs,
)

__all__ = [
    "ActionSelector",
    "AgentController",
    "EpsilonGreedy",
    "LinearSchedule",
    "SoftmaxPolicy",
    "build_selector",
    "epsilon_greedy",
    "masked_argmax",
    "policy_probs",
]
