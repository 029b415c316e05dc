"""What the checkpoint digest costs: save and load of a full checkpoint, with the SHA-256 share.

Run: ``.venv/bin/python benchmarks/checkpoint_cost.py [--episodes 5000] [--repeats 3]``.
Fills a replay buffer of ``--episodes`` random episodes of a task's sizes (SMAX 3m by default:
the largest buffer our presets hold), then prints the checkpoint's size and the median wall
time of ``save_checkpoint``, ``load_checkpoint`` and ``content_digest`` alone over the repeats
(every save and load computes the digest once). Issue 13 added the digest.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from qmix.checkpoint import content_digest, load_checkpoint, save_checkpoint
from qmix.data.episode_batch import EpisodeBatch
from qmix.data.replay_buffer import ReplayBuffer
from qmix.types import EnvInfo

# SMAX 3m as our adapter reports it (n_agents, n_actions, obs_dim, state_dim, episode_limit)
TASKS = {
    "smax_3m": EnvInfo(3, 8, 75, 72, 100),
    "lbf_8x8_2p_2f_coop": EnvInfo(2, 6, 15, 30, 50),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", choices=sorted(TASKS), default="smax_3m")
    parser.add_argument("--episodes", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = TASKS[args.task]
    buffer = ReplayBuffer(args.episodes, info)
    generator = torch.Generator().manual_seed(0)
    for _ in range(0, args.episodes, 500):
        batch = EpisodeBatch.zeros(500, info)
        batch.obs.uniform_(-1, 1, generator=generator)
        batch.state.uniform_(-1, 1, generator=generator)
        buffer.insert(batch)
    state = {"buffer": buffer.state_dict()}
    saves, loads, digests = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        for _ in range(args.repeats):
            start = time.perf_counter()
            save_checkpoint(path, state)
            saves.append(time.perf_counter() - start)
            start = time.perf_counter()
            load_checkpoint(path)
            loads.append(time.perf_counter() - start)
            start = time.perf_counter()
            content_digest(state)
            digests.append(time.perf_counter() - start)
        size = path.stat().st_size
    digest = statistics.median(digests)
    print(f"{args.task}, {args.episodes} episodes in the buffer: checkpoint {size / 2**20:.0f} MiB")
    print(f"  save  {statistics.median(saves):6.2f} s (digest {digest:.2f} s of it)")
    print(f"  load  {statistics.median(loads):6.2f} s (digest {digest:.2f} s of it)")
    print(f"  digest alone: {size / 2**20 / digest:.0f} MiB/s")


if __name__ == "__main__":
    main()
