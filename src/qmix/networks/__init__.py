"""Agent networks and mixers (torch only: no config, no environments)."""

from qmix.networks.agents import AgentNetwork, build_agent
from qmix.networks.mixers import Mixer, QMixer, VDNMixer, build_mixer

__all__ = ["AgentNetwork", "Mixer", "QMixer", "VDNMixer", "build_agent", "build_mixer"]
