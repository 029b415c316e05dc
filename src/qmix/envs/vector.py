"""VectorEnv implementations for one-episode-at-a-time environments.

- :class:`InProcessVectorEnv`: a list of environments stepped in a loop (cheap tasks).
- :class:`SubprocessVectorEnv`: environments spread over worker processes (Python tasks whose
  step costs more than a pipe round trip), with clear errors when a worker crashes or hangs.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np

from qmix.envs.base import MultiAgentEnv, VectorStep
from qmix.types import EnvInfo


class ArrayVectorEnv:
    """Shared part of VectorEnvs that keep the current arrays in numpy buffers.

    Subclasses fill ``_info``, ``_obs [B, N, O]``, ``_state [B, S]`` and ``_avail [B, N, A]``
    and implement ``reset``, ``step`` and ``close``.
    """

    num_envs: int
    _info: EnvInfo
    _obs: np.ndarray
    _state: np.ndarray
    _avail: np.ndarray

    def env_info(self) -> EnvInfo:
        """Sizes of the task (shared by every environment)."""
        return self._info

    def observations(self) -> np.ndarray:
        """``[B, N, O]`` float32."""
        return self._obs

    def states(self) -> np.ndarray:
        """``[B, S]`` float32."""
        return self._state

    def avail_actions(self) -> np.ndarray:
        """``[B, N, A]`` bool."""
        return self._avail


class InProcessVectorEnv(ArrayVectorEnv):
    """``B`` environments in this process.

    Args:
        make: builds one environment.
        num_envs: ``B``.
    """

    def __init__(self, make: Callable[[], MultiAgentEnv], num_envs: int) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.envs = [make() for _ in range(num_envs)]
        self.num_envs = num_envs
        self._info = self.envs[0].env_info()
        n, a = self._info.n_agents, self._info.n_actions
        self._obs = np.zeros((num_envs, n, self._info.obs_dim), np.float32)
        self._state = np.zeros((num_envs, self._info.state_dim), np.float32)
        self._avail = np.ones((num_envs, n, a), bool)

    def _read(self, i: int) -> None:
        env = self.envs[i]
        self._obs[i] = env.observations()
        self._state[i] = env.state()
        self._avail[i] = env.avail_actions()

    def reset(self, seeds: Sequence[int], mask: np.ndarray) -> None:
        """Reset environment ``i`` with ``seeds[i]`` where ``mask[i]``."""
        for i, env in enumerate(self.envs):
            if mask[i]:
                env.reset(seed=int(seeds[i]))
                self._read(i)

    def step(self, actions: np.ndarray, active: np.ndarray) -> VectorStep:
        """Step the active environments with ``actions [B, N]``."""
        b = self.num_envs
        out = VectorStep(
            reward=np.zeros(b, np.float32),
            terminated=np.zeros(b, bool),
            truncated=np.zeros(b, bool),
            infos=[{} for _ in range(b)],
        )
        for i, env in enumerate(self.envs):
            if not active[i]:
                continue
            result = env.step(actions[i])
            out.reward[i] = result.reward
            out.terminated[i] = result.terminated
            out.truncated[i] = result.truncated
            out.infos[i] = result.info
            self._read(i)
        return out

    def close(self) -> None:
        """Close every environment."""
        for env in self.envs:
            env.close()


class EnvWorkerError(RuntimeError):
    """A worker process crashed, raised, or stopped answering."""


def _worker(conn: Connection, name: str, env_args: dict[str, Any], count: int) -> None:
    """Worker process: hosts ``count`` environments and answers reset/step/close commands."""
    from qmix.envs.registry import make_env

    try:
        envs = InProcessVectorEnv(lambda: make_env(name, env_args), count)
        conn.send(("ok", envs.env_info()))
        while True:
            command, *args = conn.recv()
            if command == "reset":
                envs.reset(*args)
                conn.send(("ok", (envs.observations(), envs.states(), envs.avail_actions())))
            elif command == "step":
                result = envs.step(*args)
                arrays = (envs.observations(), envs.states(), envs.avail_actions())
                conn.send(("ok", (result, *arrays)))
            elif command == "close":
                envs.close()
                conn.send(("ok", None))
                return
    except KeyboardInterrupt:  # the parent is shutting down
        return
    except BaseException as err:  # report anything, then stop
        conn.send(("error", f"{type(err).__name__}: {err}"))


class SubprocessVectorEnv(ArrayVectorEnv):
    """``B`` environments spread over worker processes, stepped in parallel.

    For Python tasks whose step costs more than a pipe round trip (RWARE, MPE). Each worker
    hosts ``ceil(B / workers)`` environments. A worker that raises, dies or does not answer
    within ``timeout`` seconds gives an :class:`EnvWorkerError` naming the task, never a hang.

    Args:
        name: registered environment name or ``"module:factory"``.
        env_args: keyword arguments of the factory.
        num_envs: ``B``.
        workers: number of processes (at most ``B``).
        timeout: seconds to wait for any one answer.
    """

    def __init__(
        self,
        name: str,
        env_args: dict[str, Any],
        num_envs: int,
        workers: int,
        timeout: float = 60.0,
    ) -> None:
        if num_envs < 1 or workers < 1:
            raise ValueError(f"need num_envs >= 1 and workers >= 1, got {num_envs}, {workers}")
        self.name = name
        self.num_envs = num_envs
        self.timeout = timeout
        workers = min(workers, num_envs)
        counts = [len(c) for c in np.array_split(np.arange(num_envs), workers)]
        self._slices = np.cumsum([0, *counts])
        # forkserver/spawn: workers never inherit this process's torch or JAX threads
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        context: Any = mp.get_context(method)
        self._conns: list[Connection] = []
        self._procs: list[BaseProcess] = []
        for count in counts:
            parent, child = context.Pipe()
            proc = context.Process(target=_worker, args=(child, name, env_args, count), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        # start-up imports the task's packages (JAX, say): allow it longer than a step
        infos = [self._receive(k, max(timeout, 120.0)) for k in range(workers)]
        self._info: EnvInfo = infos[0]
        n, a = self._info.n_agents, self._info.n_actions
        self._obs = np.zeros((num_envs, n, self._info.obs_dim), np.float32)
        self._state = np.zeros((num_envs, self._info.state_dim), np.float32)
        self._avail = np.ones((num_envs, n, a), bool)

    def _receive(self, k: int, timeout: float | None = None) -> Any:
        conn, proc = self._conns[k], self._procs[k]
        timeout = self.timeout if timeout is None else timeout
        try:
            ready = conn.poll(timeout)
            if not ready:
                raise EnvWorkerError(
                    f"environment {self.name!r}: worker {k} did not answer within "
                    f"{timeout:.0f} s (hung?); check the task or raise worker_timeout_seconds"
                )
            status, payload = conn.recv()
        except (EOFError, ConnectionError, OSError) as err:
            proc.join(timeout=1.0)
            self.close(force=True)
            raise EnvWorkerError(
                f"environment {self.name!r}: worker {k} died (exit code {proc.exitcode})"
            ) from err
        except EnvWorkerError:
            self.close(force=True)
            raise
        if status == "error":
            self.close(force=True)
            raise EnvWorkerError(f"environment {self.name!r}: worker {k} failed: {payload}")
        return payload

    def _gather(self, command: str, *parts: np.ndarray | Sequence[int]) -> list[Any]:
        for k, conn in enumerate(self._conns):
            lo, hi = self._slices[k], self._slices[k + 1]
            conn.send((command, *(p[lo:hi] for p in parts)))
        return [self._receive(k) for k in range(len(self._conns))]

    def _store(self, k: int, arrays: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        lo, hi = self._slices[k], self._slices[k + 1]
        self._obs[lo:hi], self._state[lo:hi], self._avail[lo:hi] = arrays

    def reset(self, seeds: Sequence[int], mask: np.ndarray) -> None:
        """Reset environment ``i`` with ``seeds[i]`` where ``mask[i]``, in parallel."""
        for k, arrays in enumerate(self._gather("reset", list(seeds), mask)):
            self._store(k, arrays)

    def step(self, actions: np.ndarray, active: np.ndarray) -> VectorStep:
        """Step the active environments with ``actions [B, N]``, all workers in parallel."""
        parts = self._gather("step", actions, active)
        for k, (_, *arrays) in enumerate(parts):
            self._store(k, (arrays[0], arrays[1], arrays[2]))
        results: list[VectorStep] = [p[0] for p in parts]
        return VectorStep(
            reward=np.concatenate([r.reward for r in results]),
            terminated=np.concatenate([r.terminated for r in results]),
            truncated=np.concatenate([r.truncated for r in results]),
            infos=[i for r in results for i in r.infos],
        )

    def close(self, force: bool = False) -> None:
        """Stop the workers (politely unless ``force``)."""
        for conn, proc in zip(self._conns, self._procs, strict=True):
            if not force and proc.is_alive():
                try:
                    conn.send(("close",))
                    if conn.poll(5.0):
                        conn.recv()
                except (OSError, EOFError, BrokenPipeError):
                    pass
            if proc.is_alive():
                proc.terminate()
            proc.join(timeout=5.0)
            conn.close()
        self._conns, self._procs = [], []

    def __del__(self) -> None:
        if getattr(self, "_procs", None):
            self.close(force=True)
