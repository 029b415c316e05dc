"""VectorEnv implementations for one-episode-at-a-time environments.

- :class:`InProcessVectorEnv`: a list of environments stepped in a loop (cheap tasks).
- :class:`SubprocessVectorEnv`: environments spread over worker processes (Python tasks whose
  step costs more than a pipe round trip), with clear errors when a worker crashes or hangs.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np

from qmix.envs.base import (
    EnvError,
    EnvOutputError,
    MultiAgentEnv,
    VectorStep,
    env_label,
    env_raised,
    one_line,
    output_error,
)
from qmix.types import EnvInfo

# a watchdog for hung in-process environments (POSIX only)
_HAS_ALARM = hasattr(signal, "pthread_kill") and hasattr(signal, "SIGALRM")


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


class _Hung(BaseException):
    """Raised by the SIGALRM handler inside a hung environment call. A BaseException, so an
    environment's own ``except Exception`` does not swallow it."""


class _Watchdog:
    """Stops hung in-process environment calls: a ``SIGALRM`` handler plus a daemon thread.

    A guarded call publishes its deadline (one attribute write); the thread sleeps until the
    deadline of the call in flight (or, with none in flight, for the shortest timeout, since
    no later call can end sooner) and, when that call is still in flight, sends ``SIGALRM`` to
    the main thread, whose handler raises :class:`_Hung` there (a blocking ``sleep`` or
    ``read`` is interrupted too). So the thread wakes about once per timeout, and a call costs
    no system call. Measured on a B = 1 LBF step (issue 13 asks for a tiny cost): arming and
    disarming ``setitimer`` around every call, and swapping handlers, cost 3-4%; a thread
    polling every 0.25 s cost 6% (each wake takes the GIL from the stepping thread); and a
    process has only one ``ITIMER_REAL``, which pytest-timeout and others may own.

    The handler is installed at the first guarded call and given back by :meth:`release` (an
    environment's ``close``); whether it is still ours is checked at every batched reset (once
    per episode) and before each signal is sent. A ``SIGALRM`` this class did not send goes to
    the handler it replaced, if that was a Python function (default or ignored ones are
    ignored while it is installed).
    """

    installed = False  # our handler and thread are (as far as we know) in place
    previous: Any = None  # the handler ours replaced
    flight: tuple[float] | None = None  # (deadline,) of the guarded call in flight, a token
    sent: tuple[float] | None = None  # the flight the thread signalled about
    shortest = math.inf  # the shortest timeout of the guarded calls: the thread's idle sleep
    _wake: threading.Event | None = None  # the thread's; set to stop it or shorten its sleep
    _forked = False  # os.register_at_fork was called

    @staticmethod
    def handler(signum: int, frame: Any) -> None:
        # a static method: ``_Watchdog.handler`` is one object, so ``is`` finds it installed
        sent = _Watchdog.sent
        if sent is None:  # not ours
            if callable(_Watchdog.previous):
                _Watchdog.previous(signum, frame)
            return
        _Watchdog.sent = None
        if _Watchdog.flight is sent:  # else that call returned meanwhile: nothing to stop
            _Watchdog.flight = None  # one stop per call
            raise _Hung

    @staticmethod
    def install(timeout: float, verify: bool) -> None:
        """Put our handler and thread in place for calls of ``timeout`` seconds, unless known
        to be (``verify``: look again)."""
        if _Watchdog.installed and not verify and timeout >= _Watchdog.shortest:
            return
        current = signal.getsignal(signal.SIGALRM)
        if current is not _Watchdog.handler:
            _Watchdog.previous = current
            signal.signal(signal.SIGALRM, _Watchdog.handler)
        if not _Watchdog._forked:  # a forked child has the handler but not the thread
            os.register_at_fork(after_in_child=_Watchdog._forget)
            _Watchdog._forked = True
        if timeout < _Watchdog.shortest:
            _Watchdog.shortest = timeout
            if _Watchdog._wake is not None:
                _Watchdog._wake.set()  # it may be sleeping for longer
        if _Watchdog._wake is None:
            _Watchdog._wake = threading.Event()
            main = threading.main_thread().ident
            thread = threading.Thread(
                target=_Watchdog._watch,
                args=(_Watchdog._wake, main),
                name="qmix-env-watchdog",
                daemon=True,
            )
            thread.start()
        _Watchdog.installed = True

    @staticmethod
    def _watch(wake: threading.Event, main: int) -> None:
        while True:
            flight = _Watchdog.flight  # one read: the deadline and its token together
            now = time.monotonic()
            if (
                flight is not None
                and _Watchdog.sent is None
                and now >= flight[0]
                and signal.getsignal(signal.SIGALRM) is _Watchdog.handler
            ):
                _Watchdog.sent = flight
                signal.pthread_kill(main, signal.SIGALRM)
            sleep = _Watchdog.shortest
            if flight is not None and flight[0] > now:
                sleep = flight[0] - now + 0.01
            if wake.wait(sleep):
                if _Watchdog._wake is not wake:  # released (and maybe replaced): stop
                    return
                wake.clear()

    @staticmethod
    def _forget() -> None:
        _Watchdog.installed, _Watchdog._wake = False, None
        _Watchdog.flight = _Watchdog.sent = None

    @staticmethod
    def release() -> None:
        """Give the handler back and stop the thread (another guarded environment puts them
        back on its next call)."""
        if not _Watchdog.installed:
            return
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGALRM) is _Watchdog.handler
        ):
            signal.signal(signal.SIGALRM, _Watchdog.previous)
        wake, _Watchdog._wake = _Watchdog._wake, None
        if wake is not None:
            wake.set()
        _Watchdog.installed = False
        _Watchdog.shortest = math.inf


class InProcessVectorEnv(ArrayVectorEnv):
    """``B`` environments in this process.

    Every call into an environment's code (``make``, ``reset``, ``step`` and the reads of
    ``observations``, ``state`` and ``avail_actions``) is guarded: an exception becomes an
    :class:`~qmix.envs.base.EnvError` naming the task and the method, with the traceback in
    ``details`` (``KeyboardInterrupt`` and ``SystemExit`` pass through untouched), and each
    environment's arrays must have exactly their shapes (``[N, O]``, ``[S]``, ``[N, A]``) and
    its reward be a finite scalar, else :class:`~qmix.envs.base.EnvOutputError` (issue 13).

    A batched ``reset`` or ``step`` that runs longer than ``timeout`` seconds raises
    :class:`~qmix.envs.base.EnvError`, where the platform allows it: on POSIX, for calls made
    in the main thread, a watchdog thread sends ``SIGALRM`` to the main thread once a call is
    past its deadline, and the handler raises there (see :class:`_Watchdog`; the handler is
    installed at the first guarded call and given back by :meth:`close`). Elsewhere there is
    no timeout. The signal stops Python code (and blocking calls such as ``sleep``) only: a
    hang inside C code (a native simulator's loop) or a crash of the process (a segfault)
    cannot be caught in-process; run untrusted environments in worker processes
    (``env_workers=K``, :class:`SubprocessVectorEnv`), which reports both.

    Args:
        make: builds one environment.
        num_envs: ``B``.
        name: the task's name, for messages.
        timeout: seconds a batched ``reset`` or ``step`` may take; ``None`` for no limit.
    """

    def __init__(
        self,
        make: Callable[[], MultiAgentEnv],
        num_envs: int,
        name: str = "environment",
        timeout: float | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.name = name
        self.timeout = timeout
        self.envs: list[MultiAgentEnv] = []
        for _ in range(num_envs):
            try:
                self.envs.append(make())
            except EnvError:  # already named (the registry's make_env)
                self.close()
                raise
            except Exception as err:
                self.close()
                raise env_raised(name, "make()", err) from err
        self.num_envs = num_envs
        self._index_offset = 0  # index of envs[0] in the whole vector (workers), for messages
        try:
            self._info = self.envs[0].env_info()
        except Exception as err:
            raise env_raised(name, "env_info()", err) from err
        n, a = self._info.n_agents, self._info.n_actions
        self._obs = np.zeros((num_envs, n, self._info.obs_dim), np.float32)
        self._state = np.zeros((num_envs, self._info.state_dim), np.float32)
        self._avail = np.ones((num_envs, n, a), bool)
        # what one environment's obs, state and avail must be: [N, O], [S], [N, A]
        self._view_shapes = (self._obs.shape[1:], self._state.shape[1:], self._avail.shape[1:])

    def _read(self, i: int, after: str) -> None:
        """Copy environment ``i``'s views into the buffers, checking their shapes; ``after``
        is the call that produced them (``"reset()"`` or ``"step()"``), for messages."""
        env = self.envs[i]
        method = "observations()"
        try:
            obs = env.observations()
            method = "state()"
            state = env.state()
            method = "avail_actions()"
            avail = env.avail_actions()
        except EnvError:
            raise
        except Exception as err:
            raise env_raised(self.name, method, err) from err
        # exact shapes: assigning an [1, O] array into an [N, O] row would broadcast silently
        try:
            shapes = (obs.shape, state.shape, avail.shape)
        except AttributeError:  # lists, say: the buffers take them, so their shapes count too
            shapes = (np.shape(obs), np.shape(state), np.shape(avail))
        if shapes != self._view_shapes:
            self._shape_error(shapes, i, after)
        self._obs[i] = obs
        self._state[i] = state
        self._avail[i] = avail

    def _shape_error(self, shapes: tuple[tuple[int, ...], ...], i: int, after: str) -> None:
        """Raise for the first of obs, state and avail whose shape ``shapes`` is wrong."""
        names = ("observations", "state", "avail_actions")
        letters = ("[N, O]", "[S]", "[N, A]")
        checks = zip(names, shapes, self._view_shapes, letters, strict=True)
        for what, shape, expected, letter in checks:
            if shape != expected:
                raise output_error(
                    self.name,
                    f"returned {what} of shape {tuple(shape)} after {after} "
                    f"(env {i + self._index_offset}), expected {expected} {letter}",
                )

    def reset(self, seeds: Sequence[int], mask: np.ndarray) -> None:
        """Reset environment ``i`` with ``seeds[i]`` where ``mask[i]``."""
        self._guarded("reset()", self._reset, seeds, mask)

    def _reset(self, seeds: Sequence[int], mask: np.ndarray) -> None:
        for i, env in enumerate(self.envs):
            if mask[i]:
                try:
                    env.reset(seed=int(seeds[i]))
                except EnvError:
                    raise
                except Exception as err:
                    raise env_raised(self.name, "reset()", err) from err
                self._read(i, "reset()")

    def step(self, actions: np.ndarray, active: np.ndarray) -> VectorStep:
        """Step the active environments with ``actions [B, N]``."""
        out: VectorStep = self._guarded("step()", self._step, actions, active)
        return out

    def _step(self, actions: np.ndarray, active: np.ndarray) -> VectorStep:
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
            try:
                result = env.step(actions[i])
            except EnvError:
                raise
            except Exception as err:
                raise env_raised(self.name, "step()", err) from err
            reward = result.reward
            # a finite scalar; a Python float (the usual case) is checked without numpy
            if not (
                math.isfinite(reward)
                if isinstance(reward, float)
                else np.ndim(reward) == 0 and np.isfinite(reward)
            ):
                shown = reward if np.ndim(reward) == 0 else f"of shape {np.shape(reward)}"
                raise output_error(
                    self.name,
                    f"returned a {'non-finite' if np.ndim(reward) == 0 else 'non-scalar'} "
                    f"reward ({shown}) in step() (env {i + self._index_offset})",
                )
            out.reward[i] = reward
            out.terminated[i] = result.terminated
            out.truncated[i] = result.truncated
            out.infos[i] = result.info
            self._read(i, "step()")
        return out

    def _guarded(self, method: str, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)`` under the ``timeout`` watchdog where one can run (see the class
        docstring); a call past its deadline becomes :class:`~qmix.envs.base.EnvError`."""
        timeout = self.timeout
        if (
            not timeout
            or not _HAS_ALARM
            or threading.current_thread() is not threading.main_thread()
        ):
            return call(*args)
        _Watchdog.install(timeout, verify=method == "reset()")
        try:
            _Watchdog.flight = (time.monotonic() + timeout,)
            try:
                return call(*args)
            finally:
                _Watchdog.flight = None
        except _Hung:  # also when it lands in the finally clause above
            raise EnvError(
                f"{env_label(self.name)}: {method} did not return within {timeout:g} s (hung?); "
                "check the task, raise worker_timeout_seconds, or run it in workers with "
                "env_workers=K"
            ) from None

    def close(self) -> None:
        """Close every environment (and give back the ``SIGALRM`` handler)."""
        if self.timeout:
            _Watchdog.release()
        for env in self.envs:
            env.close()


class EnvWorkerError(EnvError):
    """A worker process crashed, raised, or stopped answering. The message is one line; a
    worker's traceback, when it sent one, is in ``details``."""


def _worker(conn: Connection, name: str, env_args: dict[str, Any], count: int, first: int) -> None:
    """Worker process: hosts ``count`` environments (``first`` the index of its first one in
    the whole vector) and answers reset/step/close commands.

    An error is sent as ``("error", (summary, traceback, bad_output))``: ``summary`` is one
    line (``"ValueError: boom"``, the environment's own exception where there is one, or the
    whole message of bad output), ``traceback`` the worker's."""
    from qmix.envs.registry import make_env

    # A terminal's Ctrl-C reaches the whole process group; the parent handles it (it finishes
    # its step with these workers and saves a checkpoint), then closes them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        # no watchdog here: the parent times the worker out and can stop even a C-level hang
        envs = InProcessVectorEnv(lambda: make_env(name, env_args), count, name=name)
        envs._index_offset = first
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
        cause = err.__cause__ if isinstance(err, EnvError) else None
        if isinstance(err, EnvOutputError):
            summary = str(err)
        else:
            summary = one_line(cause if isinstance(cause, Exception) else err)
        bad_output = isinstance(err, EnvOutputError)
        conn.send(("error", (summary, traceback.format_exc(), bad_output)))


class SubprocessVectorEnv(ArrayVectorEnv):
    """``B`` environments spread over worker processes, stepped in parallel.

    For Python tasks whose step costs more than a pipe round trip (RWARE, MPE). Each worker
    hosts ``ceil(B / workers)`` environments. A worker that raises, dies or does not answer
    within ``timeout`` seconds gives an :class:`EnvWorkerError` naming the task, never a hang
    (with the worker's traceback in ``details`` when it sent one); an environment's bad output
    in a worker gives :class:`~qmix.envs.base.EnvOutputError`, as in-process.

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
            first = int(self._slices[len(self._procs)])
            proc = context.Process(
                target=_worker, args=(child, name, env_args, count, first), daemon=True
            )
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
        conn = self._conns[k]
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
            raise self._died(k, err) from err
        except EnvWorkerError:
            self.close(force=True)
            raise
        if status == "error":
            self.close(force=True)
            summary, details, bad_output = payload
            if bad_output:
                raise EnvOutputError(summary, details)
            raise EnvWorkerError(f"{env_label(self.name)}: worker {k} failed: {summary}", details)
        return payload

    def _died(self, k: int, err: BaseException) -> EnvWorkerError:
        """Worker ``k``'s pipe broke (``err``): it is gone; stop the others too."""
        proc = self._procs[k]
        proc.join(timeout=1.0)
        self.close(force=True)
        return EnvWorkerError(
            f"{env_label(self.name)}: worker {k} died (exit code {proc.exitcode})"
        )

    def _gather(self, command: str, *parts: np.ndarray | Sequence[int]) -> list[Any]:
        for k, conn in enumerate(self._conns):
            lo, hi = self._slices[k], self._slices[k + 1]
            try:
                conn.send((command, *(p[lo:hi] for p in parts)))
            except (ConnectionError, OSError) as err:  # a broken pipe: the worker is gone
                raise self._died(k, err) from err
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
