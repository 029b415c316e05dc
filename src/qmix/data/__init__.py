"""Episode storage: the EpisodeBatch layout and the replay buffer."""

from qmix.data.episode_batch import EpisodeBatch
from qmix.data.replay_buffer import ReplayBuffer

__all__ = ["EpisodeBatch", "ReplayBuffer"]
