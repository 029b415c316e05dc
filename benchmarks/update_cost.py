"""Milliseconds per learner update on batches with and without padding.

Run (from the repository root)::

    .venv/bin/python benchmarks/update_cost.py [--algos qmix,cw_qmix,qplex,qtran]
        [--task lbf_8x8_2p_2f_coop] [--agent mlp] [--repeats 5]

A replay batch is padded to its longest episode. Late in an LBF run most episodes end long
before the 50-step limit, but a batch of 32 still holds one that ran to it. This times one
update on two batches of 32 episodes padded to 50 steps: every episode 50 steps long (no
padding), and one 50-step episode with 31 of ``--short`` steps (mostly padding). Random
observations; the cost does not depend on them. ``--threads`` torch threads (default 1); the
median of ``--repeats`` timings of ``--updates`` updates each, both batches timed in turn.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from qmix.config import make_config
from qmix.data.episode_batch import EpisodeBatch
from qmix.envs import make_env
from qmix.learners import build_learner


def batch_of(info: object, lengths: torch.Tensor, limit: int, seed: int = 0) -> EpisodeBatch:
    """Episodes of the given lengths, padded to ``limit`` steps, random observations."""
    g = torch.Generator().manual_seed(seed)
    batch = EpisodeBatch.zeros(len(lengths), info, limit)  # type: ignore[arg-type]
    batch.obs.normal_(generator=g)
    batch.state.normal_(generator=g)
    batch.avail_actions.fill_(True)
    batch.filled.copy_(torch.arange(limit) < lengths[:, None])
    return batch


def gru_packing(repeats: int) -> None:
    """Forward and backward of a GRU over 96 sequences of 60 steps, padded against packed
    (``pack_padded_sequence``; lengths 10-60, one of 60): why recurrent agents keep the
    padding."""
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence

    g = torch.Generator().manual_seed(0)
    b, t, h = 96, 60, 64
    rnn = nn.GRU(h, h, batch_first=True)
    x = torch.randn(b, t, h, generator=g)
    lengths = torch.randint(10, t + 1, (b,), generator=g)
    lengths[0] = t

    def padded() -> None:
        rnn(x, torch.zeros(1, b, h))[0].sum().backward()

    def packed() -> None:
        seq = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        rnn(seq, torch.zeros(1, b, h))[0].data.sum().backward()

    for name, fn in (("padded", padded), ("packed", packed)):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(10):
                fn()
            times.append((time.perf_counter() - start) / 10 * 1e3)
        print(f"GRU {name}: {np.median(times):.1f} ms (mean length {lengths.float().mean():.0f})")


def mixer_products(repeats: int) -> None:
    """QMIX's per-slot product ``[1, N] x [N, E]`` for 800 slots (N = 2, E = 32), forward and
    backward: ``torch.bmm`` against broadcast multiply-and-sum (what ``QMixer`` does)."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(800, 1, 2, generator=g).requires_grad_()
    w = torch.randn(800, 2, 32, generator=g).requires_grad_()
    ways = {
        "bmm": lambda: torch.bmm(q, w),
        "multiply-and-sum": lambda: (q.transpose(1, 2) * w).sum(dim=1, keepdim=True),
    }
    for name, fn in ways.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(200):
                fn().sum().backward()
            times.append((time.perf_counter() - start) / 200 * 1e6)
        print(f"mixer product by {name}: {np.median(times):.0f} us forward and backward")


def adam_step(repeats: int) -> None:
    """One Adam step over the parameters of QMIX on LBF 8x8 (agent and mixer): ``foreach``
    against ``fused`` (what ``make_optimiser`` uses)."""
    cfg = make_config("qmix", "lbf_8x8_2p_2f_coop")
    learner = build_learner(cfg, make_env(cfg.env, cfg.env_args).env_info())
    modules = learner.modules().items()
    params = [p for name, m in modules if not name.startswith("target_") for p in m.parameters()]
    for p in params:
        p.grad = torch.randn_like(p)
    kinds = ("foreach", "fused")
    optimisers = {
        k: torch.optim.Adam(params, lr=5e-4, eps=1e-5, foreach=k == "foreach", fused=k == "fused")
        for k in kinds
    }
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(10 * repeats):  # interleaved, each first in turn: a busy machine hits both
        for kind in kinds if r % 2 else kinds[::-1]:
            start = time.perf_counter()
            for _ in range(50):
                optimisers[kind].step()
            times[kind].append((time.perf_counter() - start) / 50 * 1e6)
    for kind in kinds:
        print(f"Adam step, {kind}: {np.median(times[kind]):.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--algos", default="qmix,cw_qmix,qplex,qtran")
    parser.add_argument("--task", default="lbf_8x8_2p_2f_coop")
    parser.add_argument("--agent", default=None, help="mlp or rnn (default: the preset's)")
    parser.add_argument("--short", type=int, default=20, help="length of the short episodes")
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (torch_threads)")
    parser.add_argument("--only-updates", action="store_true", help="skip the micro-timings")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| algorithm | agent | all 50 steps (ms) | one 50 + 31 short (ms) | ratio |")
    print("|---|---|---|---|---|")
    for algo in args.algos.split(","):
        overrides = {"agent": args.agent} if args.agent else {}
        cfg = make_config(algo, args.task, overrides)
        info = make_env(cfg.env, cfg.env_args).env_info()
        learner = build_learner(cfg, info)
        limit = info.episode_limit
        full = batch_of(info, torch.full((32,), limit), limit)
        short = torch.full((32,), args.short)
        short[0] = limit
        padded = batch_of(info, short, limit)
        times: dict[str, list[float]] = {"full": [], "padded": []}
        for _ in range(3):
            learner.train(full)
        for _ in range(args.repeats):
            for name, batch in (("full", full), ("padded", padded)):
                start = time.perf_counter()
                for _ in range(args.updates):
                    learner.train(batch)
                times[name].append((time.perf_counter() - start) / args.updates * 1e3)
        f, p = float(np.median(times["full"])), float(np.median(times["padded"]))
        print(f"| {algo} | {cfg.agent} | {f:.2f} | {p:.2f} | {p / f:.2f} |", flush=True)
    if not args.only_updates:
        gru_packing(args.repeats)
        mixer_products(args.repeats)
        adam_step(args.repeats)


if __name__ == "__main__":
    main()
