"""A persistent pool of worker processes that render an :class:`~fxlib.chain.FxChain` many times.

One *render* processes one ``(C, T)`` input row with one unit parameter vector ``(P,)``. A
job (:meth:`Engine.submit`, or :meth:`Engine.render` to wait for it) carries any number N
of renders (a batch's nominal and perturbed renders) and splits them into one contiguous
share per worker, so every worker is busy and there is no process per batch item.

Two-part jobs
    A job may ask for its first ``first`` renders before the others (the nominal renders of
    a training step, then its perturbed ones): each worker renders its share of the first
    part, reports, and goes on with its share of the rest while the caller already has the
    first part (:meth:`Job.first`); :meth:`Job.result` waits for everything. One job is in
    flight at a time; submitting the next one first waits for the previous one and keeps
    its outputs for its :meth:`Job.result`. Inline, the second part is rendered only when
    :meth:`Job.result` asks for it, or (stream mode) before the next job or reset.

Workers
    ``workers`` processes are started once, with the ``spawn`` start method (safe with torch's
    threads and in Jupyter), with one thread each for OpenMP/BLAS; each rebuilds the chain
    from its plain-data spec and keeps it for its life. ``workers=1`` renders inline, in the
    calling process, with no subprocess (and no crash isolation). Inside a daemonic process
    (a DataLoader worker), where children are not allowed, the engine renders inline and
    warns once.

Data
    Audio, parameters and outputs live in shared-memory arrays that are reused from call to
    call (grown when a call needs more); the pipes carry only small messages, one per worker
    per job: its index range, the names and shapes of the shared arrays, and the stream
    instances to reset first (:meth:`Engine.reset` sends nothing itself). A worker checks and
    maps its share's audio and parameters at once (:meth:`FxChain.native_rows`), not per render.
    :meth:`Job.result` copies the outputs out; :meth:`Job.consume` lends them where the workers
    wrote them, for one use (the SPSA estimate reads the perturbed renders so, with no copy).

Modes
    ``"clip"``: every render starts from a reset (:meth:`FxChain.process`: optional pre-roll,
    latency compensated); a worker needs one chain instance. ``"stream"``: each render names
    an *instance key*; the chain instance of that key continues from its state
    (:meth:`FxChain.stream`, raw output lagging by ``chain.latency`` samples) until
    :meth:`Engine.reset`. Each key is pinned to one worker the first time it is seen (keys
    new in a call are shared out in order so that the call's renders are balanced).

Failures
    A plugin that crashes (segfault, abort) takes down only its worker; one that hangs past
    ``timeout`` seconds on a render has its worker killed. The engine starts a replacement
    at once and raises :class:`EngineError` naming the chain's effects, the render and its
    parameter values; in clip mode it can instead retry the lost share (``retries``). A
    failure while rendering the second part of a job is reported by :meth:`Job.result`.
    Python exceptions raised in a worker (a bad parameter, bad audio) are re-raised as they
    are, with the worker's traceback as their cause.

Cleanup
    :meth:`Engine.close`, the context manager, garbage collection and interpreter exit all
    stop the workers (a polite message, then a kill) and free the shared memory; a worker
    whose parent disappears sees its pipe close and exits.

Results depend only on the renders asked for, never on the number of workers or on
scheduling: each render is computed by the same code from the same inputs.
"""
from __future__ import annotations

import abc
import functools
import math
import multiprocessing as mp
import multiprocessing.connection
import os
import pickle
import select
import signal
import time
import traceback
import warnings
import weakref
from contextlib import contextmanager
from multiprocessing.shared_memory import SharedMemory
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .chain import FxChain
from .errors import FxError
from .hosts import check_audio

MODES = ("clip", "stream")
START_METHOD = "spawn"
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1"}
"""Environment given to worker processes: one thread each, the pool provides the parallelism."""

_daemon_warned = False


class EngineError(FxError, RuntimeError):
    """A worker that crashed, hung or could not start; the message names the chain's effects,
    the render and its parameter values."""


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as its ``__cause__``."""

    def __str__(self) -> str:
        return str(self.args[0])


# -- rendering: the same code in a worker process and inline ---------------------------------
class _Renderer:
    """Renders positions of a job with this process's chain instances.

    Args:
        spec: the chain spec (plain data).
        mode: ``"clip"`` (one instance, reset before each render) or ``"stream"`` (one
            instance per key, built on first use, continuing from its state).
        preroll: samples of each clip-mode input that warm the state and are not returned.
    """

    def __init__(self, spec: Mapping, mode: str, preroll: int) -> None:
        self.spec, self.mode, self.preroll = spec, mode, preroll
        self.chains: dict[int, FxChain] = {}
        if mode == "clip":
            self.chains[0] = FxChain.from_spec(spec)

    def check(self, audio: np.ndarray) -> None:
        """Raise :class:`AudioFormatError` (naming the row) unless every input row is finite: once
        per job, so that each render skips the check that :meth:`FxChain.stream` and
        :meth:`FxChain.process` make. The engine makes the rows C-contiguous float32
        ``(N_in, C, T)`` of the chain's channel count (:meth:`Engine.submit`).
        """
        if not np.isfinite(audio).all():
            row = int(np.argwhere(~np.isfinite(audio))[0, 0])
            check_audio(audio[row], f"{self.spec.get('name') or 'chain'} (input row {row})")

    def render(self, audio: np.ndarray, params: np.ndarray, table: np.ndarray, out: np.ndarray,
               start: int, stop: int, progress: np.ndarray | None) -> None:
        """Render the renders ``table[0, start:stop]`` into ``out``.

        Args:
            audio: input rows ``(N_in, C, T)`` float32, checked (:meth:`check`).
            params: unit parameter vectors ``(N, P)`` float64.
            table: ``(3, N)`` int64: the render order, each render's input row, its instance key.
            out: ``(N, C, T_out)`` float32, written in place.
            start, stop: the positions of ``table[0]`` to render.
            progress: ``(2,)`` int64, this worker's status row: the position in progress and the
                ``time.monotonic_ns()`` it started at, read by the main process to find hangs.
        """
        if stop <= start:
            return
        order, source, key = table
        renders = order[start:stop]
        chains = [self.chains[0]] * len(renders) if self.mode == "clip" else [self._instance(k) for k in key[renders]]
        native = chains[0].native_rows(params[renders])  # the share's parameters, checked and mapped at once
        for j, (i, chain, values) in enumerate(zip(renders.tolist(), chains, native), start=start):
            if progress is not None:
                progress[0], progress[1] = j, time.monotonic_ns()
            if self.mode == "clip":
                out[i] = chain.process_checked(audio[source[i]], values, self.preroll)
            else:
                out[i] = chain.stream_checked(audio[source[i]], values)

    def _instance(self, key: int) -> FxChain:
        key = int(key)
        if key not in self.chains:
            self.chains[key] = FxChain.from_spec(self.spec)
        return self.chains[key]

    def reset(self, keys: Sequence[int] | None) -> None:
        """Reset the stream instances ``keys`` (None: all of them)."""
        for key in (self.chains if keys is None else keys):
            if key in self.chains:
                self.chains[key].reset()

    def close(self) -> None:
        for chain in self.chains.values():
            chain.close()
        self.chains.clear()


def _wait(objects: Sequence[Any], timeout: float) -> list[Any]:
    """The connections and process sentinels among ``objects`` that are ready to read (or
    closed), waiting up to ``timeout`` seconds: ``multiprocessing.connection.wait``, done with
    one ``select.poll`` call where the system has it (the main process waits a few times per
    step, and the selector that ``wait`` builds each time costs tens of microseconds)."""
    if not hasattr(select, "poll"):
        return mp.connection.wait(objects, timeout)
    poller, by_fd = select.poll(), {}
    for obj in objects:
        fd = obj if isinstance(obj, int) else obj.fileno()
        by_fd[fd] = obj
        poller.register(fd, select.POLLIN)
    return [by_fd[fd] for fd, _ in poller.poll(1000.0 * timeout)]


class _Attachments:
    """A worker's attachments to the main process's shared-memory segments, by name."""

    def __init__(self) -> None:
        self.segments: dict[str, SharedMemory] = {}

    def arrays(self, layout: Sequence[tuple[str, tuple[int, ...], str]]) -> list[np.ndarray]:
        """Views ``[audio, params, table, out]`` described by ``(segment name, shape, dtype)``.

        Segments no longer in the layout (replaced by bigger ones) are detached; the caller
        must hold no views of them.
        """
        names = {name for name, _, _ in layout}
        for name in [n for n in self.segments if n not in names]:
            self.segments.pop(name).close()
        views = []
        for name, shape, dtype in layout:
            if name not in self.segments:
                self.segments[name] = SharedMemory(name)
            views.append(np.ndarray(shape, np.dtype(dtype), self.segments[name].buf))
        return views

    def close(self) -> None:
        for segment in self.segments.values():
            segment.close()
        self.segments.clear()


def _send_error(conn: mp.connection.Connection, exc: BaseException) -> None:
    """Send an exception and its traceback; one that does not pickle travels as an EngineError."""
    tb = "".join(traceback.format_exception(exc))
    try:
        payload = pickle.dumps(exc)
    except (pickle.PicklingError, TypeError, AttributeError):
        payload = pickle.dumps(EngineError(f"{type(exc).__name__}: {exc}"))
    conn.send(("error", payload, tb))


def _serve_render(conn: mp.connection.Connection, renderer: _Renderer, attachments: _Attachments,
                  progress: np.ndarray, layout: Sequence, start: int, split: int | None, stop: int,
                  resets: Sequence[int]) -> None:
    """Reset the stream instances ``resets``, then render positions ``[start, stop)``, reporting
    ``"partial"`` at ``split`` (if given); the caller reports ``"done"``."""
    if resets:
        renderer.reset(resets)
    audio, params, table, out = attachments.arrays(layout)
    renderer.check(audio)
    if split is not None:
        renderer.render(audio, params, table, out, start, split, progress)
        conn.send(("partial",))
        start = split
    renderer.render(audio, params, table, out, start, stop, progress)


def _worker_main(conn: mp.connection.Connection, spec: Mapping, mode: str, preroll: int, status_name: str,
                 index: int) -> None:
    """A worker process: build the chain, then serve ``render`` messages until ``close``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    try:
        renderer = _Renderer(spec, mode, preroll)
    except Exception as exc:
        _send_error(conn, exc)
        return
    status = SharedMemory(status_name)
    progress = np.ndarray((2,), np.int64, status.buf, offset=16 * index)
    attachments = _Attachments()
    conn.send(("ready", os.getpid()))
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:  # the main process is gone
                return
            if message[0] == "close":
                return
            try:
                _serve_render(conn, renderer, attachments, progress, *message[1:])
                conn.send(("done",))
            except Exception as exc:
                _send_error(conn, exc)
    finally:
        renderer.close()
        attachments.close()
        del progress
        status.close()


# -- jobs ----------------------------------------------------------------------------------------
class Job(abc.ABC):
    """Renders submitted to an :class:`Engine`, in flight until :meth:`result` is asked for.

    Attributes:
        claimed: whether :meth:`result` (or :meth:`consume`) was asked for (an error it raised
            has been seen).
    """

    claimed = False

    @abc.abstractmethod
    def first(self) -> np.ndarray:
        """The outputs ``(first, C, T_out)`` of the first part, as soon as they are rendered."""

    @abc.abstractmethod
    def result(self) -> np.ndarray:
        """The outputs ``(N, C, T_out)`` of every render.

        Raises:
            EngineError: a worker died or hung (it has been restarted).
            FxError: a chain error raised in a worker (bad audio, parameters).
        """

    @contextmanager
    def consume(self) -> Iterator[np.ndarray]:
        """The outputs ``(N, C, T_out)`` of every render, for one use, without a copy where
        they sit in the workers' shared memory: valid only inside the ``with`` block, during
        which nothing may be submitted to, reset on or closed of the engine, and from which
        no view of them (array or tensor) may escape. Afterwards the job may hold no outputs:
        where they were lent from shared memory, :meth:`result` raises :class:`EngineError`.

        Raises:
            as :meth:`result`.
        """
        yield self.result()


class _InlineJob(Job):
    """A job rendered in the calling process: its first part when asked for, the rest when asked for."""

    def __init__(self, renderer: _Renderer, audio: np.ndarray, params: np.ndarray, table: np.ndarray,
                 out_shape: tuple[int, ...], first: int) -> None:
        renderer.check(audio)
        self.renderer, self.audio, self.params, self.table = renderer, audio, params, table
        self.out = np.empty(out_shape, np.float32)
        self.n_first, self.rendered = first, 0

    def _render_until(self, stop: int) -> None:
        if stop > self.rendered:
            self.renderer.render(self.audio, self.params, self.table, self.out, self.rendered, stop, None)
            self.rendered = stop

    def first(self) -> np.ndarray:
        self._render_until(self.n_first)
        return self.out[: self.n_first]

    def result(self) -> np.ndarray:
        self.claimed = True
        self._render_until(self.table.shape[1])
        self.audio = self.params = None
        return self.out


class _Inline:
    """Renders in the calling process."""

    def __init__(self, spec: Mapping, mode: str, preroll: int) -> None:
        self.renderer = _Renderer(spec, mode, preroll)

    def submit(self, audio: np.ndarray, params: np.ndarray, table: np.ndarray, out_shape: tuple[int, ...],
               first: int, shares: Sequence, resets: Mapping, retries: int, explain: Callable) -> _InlineJob:
        return _InlineJob(self.renderer, audio, params, table, out_shape, first)

    def reset(self, keys: Sequence[int] | None) -> None:
        self.renderer.reset(keys)

    def close(self) -> None:
        self.renderer.close()


# -- a pool of worker processes --------------------------------------------------------------------
@contextmanager
def _worker_env() -> Iterator[None]:
    """Set :data:`WORKER_ENV` while a worker process is started (it inherits the environment)."""
    saved = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Worker:
    """One worker process and the main process's end of its pipe."""

    def __init__(self, ctx: Any, index: int, spec: Mapping, mode: str, preroll: int, status_name: str) -> None:
        self.index = index
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child, spec, mode, preroll, status_name, index),
                                   name=f"fxlib-engine-{index}", daemon=True)
        with _worker_env():
            self.process.start()
        child.close()
        self.ready = False

    def ask_to_stop(self) -> None:
        """Ask the worker to exit (it closes its plugins first); :meth:`kill` reaps it."""
        if self.process.is_alive():
            try:
                self.conn.send(("close",))
            except (BrokenPipeError, ConnectionResetError):
                pass  # it died meanwhile: kill() reaps it all the same

    def kill(self, grace: float = 0.0) -> None:
        """Wait up to ``grace`` seconds for the worker to exit, then kill it, and reap it."""
        self.process.join(grace)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.process.close()
        self.conn.close()


class _Flight:
    """Messages sent to workers and how far each has got: 0 sent, 1 first part done, 2 done.

    ``failures`` holds ``{worker: (what happened, position)}`` for workers that died or hung
    (already restarted); ``errors`` the Python exceptions workers reported.
    """

    def __init__(self, messages: Mapping[int, tuple]) -> None:
        self.messages = dict(messages)
        self.phase = {w: 0 for w in messages}
        self.failures: dict[int, tuple[str, int]] = {}
        self.errors: list[tuple] = []

    def busy(self, phase: int) -> list[int]:
        """The workers, not failed, that have not reached ``phase``."""
        return [w for w, p in self.phase.items() if p < phase and w not in self.failures]

    def raise_errors(self, explain: Callable[[Mapping[int, tuple[str, int]]], str]) -> None:
        if self.errors:
            _, payload, tb = self.errors[0]
            raise pickle.loads(payload) from _RemoteTraceback(tb)
        if self.failures:
            raise EngineError(explain(self.failures))


class _PoolJob(Job):
    """A job in flight on the pool's workers.

    Its outputs stay in the pool's shared ``out`` segment until they are copied out
    (:meth:`result`, or :meth:`keep` when the next job needs the segment) or consumed
    (:meth:`consume`); until then the job is the pool's ``current`` one.
    """

    def __init__(self, pool: "_Pool", layout: list, flight: _Flight, out_shape: tuple[int, ...], first: int,
                 retries: int, explain: Callable) -> None:
        self.pool, self.layout, self.flight, self.out_shape = pool, layout, flight, out_shape
        self.n_first, self.retries, self.explain = first, retries, explain
        self.outputs: np.ndarray | None = None  # the copy, once taken
        self.error: BaseException | None = None
        self.finished = self.consumed = False

    def first(self) -> np.ndarray:
        if not self.finished:
            self.pool.advance(self.flight, 1)
            if not (self.flight.failures or self.flight.errors):
                return self._read(self.n_first)
            self.finish()
        return self.result()[: self.n_first]

    def result(self) -> np.ndarray:
        self.claimed = True
        self._settled()
        self.keep()
        return self.outputs

    @contextmanager
    def consume(self) -> Iterator[np.ndarray]:
        self.claimed = True
        self._settled()
        try:
            if self.outputs is not None:
                yield self.outputs
            else:
                with self._shared() as out:
                    yield out
        finally:
            self.consumed, self.outputs = True, None
            self._release()

    def _settled(self) -> None:
        """Wait for the job; raise its error, or that its outputs were consumed."""
        self.finish()
        if self.error is not None:
            raise self.error
        if self.consumed:
            raise EngineError("this job's outputs were consumed (Job.consume): they are gone")

    def finish(self) -> None:
        """Wait for every render and retry lost shares; keep the error (if any) to raise later."""
        if self.finished:
            return
        self.finished = True
        try:
            self.pool.advance(self.flight, 2)
            for _ in range(self.retries):
                if not self.flight.failures or self.flight.errors:
                    break
                again = {w: (*self.flight.messages[w][:3], None, *self.flight.messages[w][4:])
                         for w in self.flight.failures}  # the whole share, in one part
                self.flight = self.pool.send(again)
                self.pool.advance(self.flight, 2)
            self.flight.raise_errors(self.explain)
        except Exception as exc:
            self.error = exc
        except BaseException:  # KeyboardInterrupt: reported now, and to whoever asks later
            self.error = EngineError("the renders were interrupted")
            raise
        finally:
            self.explain = None
            if self.error is not None:
                self._release()

    def keep(self) -> None:
        """Copy the finished outputs out of shared memory (unless consumed or failed) and free the segment."""
        if self.outputs is None and self.error is None and not self.consumed:
            self.outputs = self._read(None)
        self._release()

    def _release(self) -> None:
        if self.pool.current is self:
            self.pool.current = None

    @contextmanager
    def _shared(self) -> Iterator[np.ndarray]:
        """A view of the outputs in the shared ``out`` segment, dropped on leaving (no view may
        outlive a segment, which the next bigger job replaces)."""
        out = np.ndarray(self.out_shape, np.float32, self.pool.segments["out"].buf)
        try:
            yield out
        finally:
            del out

    def _read(self, n: int | None) -> np.ndarray:
        """A copy of the first ``n`` (None: all) output rows from shared memory."""
        with self._shared() as out:
            return out[:n].copy()


class _Pool:
    """Worker processes, their shared arrays, restarts and failure detection."""

    def __init__(self, spec: Mapping, mode: str, preroll: int, workers: int, timeout: float,
                 start_timeout: float) -> None:
        self.spec, self.mode, self.preroll = spec, mode, preroll
        self.timeout_ns = int(timeout * 1e9)
        self.start_timeout = start_timeout
        self.ctx = mp.get_context(START_METHOD)
        self.segments: dict[str, SharedMemory] = {}
        self.status = SharedMemory(create=True, size=16 * workers)
        self.current: _PoolJob | None = None
        self.workers: list[_Worker] = []
        try:
            for w in range(workers):
                self.workers.append(self._start(w))
        except BaseException:
            self.close()
            raise

    def _start(self, index: int) -> _Worker:
        return _Worker(self.ctx, index, self.spec, self.mode, self.preroll, self.status.name)

    def restart(self, index: int) -> None:
        """Kill worker ``index`` (if still alive) and start its replacement (ready later)."""
        self.workers[index].kill()
        self.workers[index] = self._start(index)

    # -- shared arrays -------------------------------------------------------------------
    def _segment(self, role: str, nbytes: int) -> SharedMemory:
        """The shared segment for ``role``, replaced by a bigger one when too small."""
        old = self.segments.get(role)
        if old is not None and old.size >= nbytes:
            return old
        size = max(nbytes, int(1.5 * old.size) if old is not None else 0, 1)
        self.segments[role] = SharedMemory(create=True, size=size)
        if old is not None:
            old.close()
            old.unlink()
        return self.segments[role]

    def _write(self, arrays: Mapping[str, np.ndarray], out_shape: tuple[int, ...]) -> list[tuple[str, tuple, str]]:
        """Copy ``arrays`` into their segments; the layout ``(name, shape, dtype)`` of them and of ``out``."""
        layout = []
        for role, array in [*arrays.items(), ("out", np.empty((0,), np.float32))]:
            shape = out_shape if role == "out" else array.shape
            segment = self._segment(role, max(1, math.prod(shape)) * array.dtype.itemsize)
            layout.append((segment.name, shape, array.dtype.str))
            if role != "out":
                view = np.ndarray(shape, array.dtype, segment.buf)
                np.copyto(view, array)
                del view  # no view may outlive the call: segments get replaced
        return layout

    # -- jobs ----------------------------------------------------------------------------
    def submit(self, audio: np.ndarray, params: np.ndarray, table: np.ndarray, out_shape: tuple[int, ...],
               first: int, shares: Sequence[tuple[int, int | None, int]], resets: Mapping[int, list[int]],
               retries: int, explain: Callable[[Mapping[int, tuple[str, int]]], str]) -> _PoolJob:
        """Start a job: worker ``w`` renders positions ``shares[w] = (start, split, stop)`` of ``table[0]``.

        One message per worker with a share: the job's layout, its positions, and the stream
        instances to reset first.

        Args:
            audio, params, table: as for :meth:`_Renderer.render`.
            out_shape: ``(N, C, T_out)``.
            first: the number of leading renders that :meth:`Job.first` returns.
            shares: each worker's positions, reporting at ``split`` (None: no two parts).
            resets: ``{worker: instance keys}`` to reset before rendering (stream mode).
            retries: how many times the share of a worker that died or hung is rendered again
                (by its replacement) before giving up.
            explain: turns a flight's failures into the error message.
        """
        self.drain()
        layout = self._write({"audio": audio, "params": params, "table": table}, out_shape)
        messages = {w: ("render", layout, start, split, stop, resets.get(w, []))
                    for w, (start, split, stop) in enumerate(shares) if stop > start}
        self.current = _PoolJob(self, layout, self.send(messages), out_shape, first, retries, explain)
        return self.current

    def drain(self) -> None:
        """Wait for the current job, if any; it keeps its outputs (or error) for its owner."""
        if self.current is not None:
            self.current.finish()
            self.current.keep()

    def send(self, messages: Mapping[int, tuple]) -> _Flight:
        """Send one message per worker (starting any worker that is not ready)."""
        self.wait_ready(list(messages))
        flight = _Flight({})
        status = np.ndarray((len(self.workers), 2), np.int64, self.status.buf)
        try:
            for w, message in messages.items():
                status[w] = (-1, time.monotonic_ns())
                self.workers[w].conn.send(message)
                flight.messages[w], flight.phase[w] = message, 0
        except BaseException:
            for w in flight.phase:
                self.restart(w)
            raise
        finally:
            del status
        return flight

    def advance(self, flight: _Flight, phase: int) -> None:
        """Wait until every worker of ``flight`` has reached ``phase``, died or hung.

        After a failure or an error, waits for every other worker to finish (phase 2), so
        that the pool is idle when it is reported. Workers that died or hung are restarted.
        On any exception in the main process itself (KeyboardInterrupt) the busy workers are
        killed and restarted before it propagates.
        """
        status = np.ndarray((len(self.workers), 2), np.int64, self.status.buf)
        try:
            while busy := flight.busy(2 if flight.failures or flight.errors else phase):
                deadline = min(int(status[w, 1]) for w in busy) + self.timeout_ns
                remaining = max(0.0, (deadline - time.monotonic_ns()) / 1e9)
                waitables = {self.workers[w].conn: w for w in busy}
                waitables.update({self.workers[w].process.sentinel: w for w in busy})
                for ready in {waitables[r] for r in _wait(list(waitables), remaining)}:
                    answer = self._answer(ready)
                    if answer[0] == "died":
                        flight.failures[ready] = (self._death(ready), int(status[ready, 0]))
                        self.restart(ready)
                        continue
                    if answer[0] == "error":
                        flight.errors.append(answer)
                    flight.phase[ready] = 1 if answer[0] == "partial" else 2
                now = time.monotonic_ns()
                for w in busy:
                    if w not in flight.failures and flight.phase[w] < 2 and now - int(status[w, 1]) > self.timeout_ns:
                        flight.failures[w] = (f"did not finish a render within the {self.timeout_ns / 1e9:g} s "
                                              f"timeout and was killed", int(status[w, 0]))
                        self.restart(w)
        except BaseException:
            for w in flight.busy(2):
                flight.failures[w] = ("was interrupted", -1)
                self.restart(w)
            raise
        finally:
            del status

    def _answer(self, w: int) -> tuple:
        """Worker ``w``'s next message, or ``("died",)`` when its pipe is empty because it is gone."""
        conn = self.workers[w].conn
        try:
            return conn.recv() if _wait([conn], 0.0) else ("died",)
        except (EOFError, ConnectionResetError):
            return ("died",)

    def _death(self, w: int) -> str:
        process = self.workers[w].process
        process.join(1.0)
        code = process.exitcode
        if code is not None and code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def wait_ready(self, indices: Sequence[int]) -> None:
        """Wait for workers ``indices`` to have built their chain."""
        for w in indices:
            if self.workers[w].ready and not self.workers[w].process.is_alive():
                self.restart(w)  # died while idle: nothing was lost, start afresh
            worker = self.workers[w]
            if worker.ready:
                continue
            answer = self._answer(w) if worker.conn.poll(self.start_timeout) else ("timeout",)
            if answer[0] == "ready":
                worker.ready = True
                continue
            self.restart(w)
            if answer[0] == "error":
                raise pickle.loads(answer[1]) from _RemoteTraceback(answer[2])
            what = "died" if answer[0] == "died" else f"did not start within {self.start_timeout:g} s"
            raise EngineError(f"worker {w} {what} while loading the chain")

    def close(self) -> None:
        if self.current is not None:
            if not self.current.finished:
                self.current.error = EngineError("the engine was closed before these renders finished")
            self.current.keep()
        for worker in self.workers:
            worker.ask_to_stop()
        for worker in self.workers:
            worker.kill(grace=2.0)
        self.workers.clear()
        for segment in [*self.segments.values(), self.status]:
            segment.close()
            segment.unlink()
        self.segments.clear()


def _shutdown(backend: _Inline | _Pool, chain: FxChain | None) -> None:
    """Stop the workers, free the shared memory and close the chain the engine built."""
    backend.close()
    if chain is not None:
        chain.close()


# -- the public engine ---------------------------------------------------------------------------
class Engine:
    """Renders batches of ``(audio, parameters)`` through a chain on a pool of worker processes.

    Args:
        chain: an :class:`FxChain` (used here for its spec and metadata; the caller keeps
            owning it) or a chain spec (a dict, built here once to check it).
        workers: worker processes (default: ``os.cpu_count()``); 1 renders inline.
        mode: ``"clip"`` (every render from a reset) or ``"stream"`` (renders continue the
            state of their instance key until :meth:`reset`).
        preroll: clip mode: the first ``preroll`` input samples of each render warm the state
            and are not returned.
        timeout: seconds one render may take before its worker is killed as hung.
        retries: clip mode: how many times the share of a worker that died or hung is
            rendered again by its replacement before :class:`EngineError` is raised.
        inline: render in this process (default: ``workers == 1``). Inline rendering has no
            crash isolation.
        start_timeout: seconds a worker may take to start and build its chain.

    Attributes:
        chain: the chain in this process, for metadata (``num_params``, ``names``, ``latency``).
        spec: the plain-data spec the workers build from.
        workers: the number of workers (1 when inline).
        inline: whether renders run in this process.
    """

    def __init__(self, chain: FxChain | Mapping, workers: int | None = None, mode: str = "clip", preroll: int = 0,
                 timeout: float = 60.0, retries: int = 0, inline: bool | None = None,
                 start_timeout: float = 120.0) -> None:
        if mode not in MODES:
            raise EngineError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "stream" and preroll:
            raise EngineError("preroll is for clip mode; a stream warms up on its own frames")
        if preroll < 0:
            raise EngineError(f"preroll must be >= 0 samples, got {preroll}")
        if not timeout > 0 or not start_timeout > 0 or retries < 0:
            raise EngineError(f"timeout and start_timeout must be > 0 s and retries >= 0; "
                              f"got {timeout}, {start_timeout}, {retries}")
        workers = (os.cpu_count() or 1) if workers is None else int(workers)
        if workers < 1:
            raise EngineError(f"workers must be >= 1, got {workers}")
        inline = workers == 1 if inline is None else bool(inline)
        if not inline and mp.current_process().daemon:
            _warn_daemon()
            inline = True
        owned = None if isinstance(chain, FxChain) else FxChain.from_spec(chain)
        self.chain = owned or chain
        self.spec = self.chain.to_spec()
        self.mode, self.preroll, self.retries = mode, int(preroll), int(retries)
        self.inline = inline
        self.workers = 1 if inline else workers
        self._owner: dict[int, int] = {}
        self._resets: dict[int, set[int]] = {}  # worker -> stream instances to reset before its next render
        self._last_shares: tuple[Any, Any] = (None, None)  # see _stream_shares
        self._stream_job: Job | None = None  # the last stream job (see _settle)
        try:
            self._backend = (_Inline(self.spec, mode, self.preroll) if inline
                             else _Pool(self.spec, mode, self.preroll, workers, timeout, start_timeout))
        except BaseException:
            if owned is not None:
                owned.close()
            raise
        self._finalizer = weakref.finalize(self, _shutdown, self._backend, owned)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the render workers, in worker order (replacements included);
        empty when rendering inline or once closed. For watching their memory or CPU."""
        if self.closed or isinstance(self._backend, _Inline):
            return []
        return [w.process.pid for w in self._backend.workers]

    def render(self, audio: np.ndarray, params: np.ndarray, source: np.ndarray | None = None,
               keys: np.ndarray | None = None, label: Callable[[int], str] | None = None) -> np.ndarray:
        """Render N renders, split over the workers, and wait for them: ``submit(...).result()``."""
        return self.submit(audio, params, source, keys, label).result()

    def submit(self, audio: np.ndarray, params: np.ndarray, source: np.ndarray | None = None,
               keys: np.ndarray | None = None, label: Callable[[int], str] | None = None,
               first: int | None = None) -> Job:
        """Start rendering N renders, split over the workers.

        Args:
            audio: input rows ``(N_in, C, T)``, cast to float32.
            params: unit parameter vectors ``(N, P)`` in [0, 1], one per render.
            source: ``(N,)`` the input row of each render (default: row i for render i).
            keys: stream mode: ``(N,)`` distinct instance keys, one per render; each instance
                continues from its state and is pinned to one worker.
            label: ``i -> str`` describing render i in error messages (e.g. its batch item).
            first: renders ``[0, first)`` form a first part that every worker renders before
                its share of the rest, for :meth:`Job.first`. In stream mode the rest is still
                rendered before this engine renders or resets anything else (a stream's
                instances advance one frame per job), and an error in it that nobody asked
                :meth:`Job.result` for is raised then.

        Returns:
            A :class:`Job`; its outputs are ``(N, C, T_out)`` float32: ``T_out = T - preroll`` in
            clip mode (latency compensated), ``T`` in stream mode (lagging the input by
            ``chain.latency``).
        """
        if self.closed:
            raise EngineError(f"{describe_chain(self.chain)}: the engine is closed")
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        params = np.ascontiguousarray(params, dtype=np.float64)
        n, p = params.shape if params.ndim == 2 else (-1, -1)
        if p != self.chain.num_params:
            raise EngineError(f"{describe_chain(self.chain)}: params must be shaped (N, {self.chain.num_params}) "
                              f"for {self.chain.names}, got {params.shape}")
        if audio.ndim != 3 or audio.shape[1] != self.chain.channels:
            raise EngineError(f"{describe_chain(self.chain)}: audio must be shaped (N_in, {self.chain.channels}, T), "
                              f"got {audio.shape}")
        if self.preroll >= audio.shape[2]:
            raise EngineError(f"preroll ({self.preroll}) must be shorter than the audio ({audio.shape[2]} samples)")
        source = np.arange(n) if source is None else np.asarray(source, dtype=np.int64)
        if source.shape != (n,) or n and not 0 <= source.min() <= source.max() < audio.shape[0]:
            raise EngineError(f"source must hold {n} input row indices in [0, {audio.shape[0]})")
        if (keys is None) != (self.mode == "clip"):
            raise EngineError("keys name stream instances: give them in stream mode and only then")
        if first is not None and not 0 <= first <= n:
            raise EngineError(f"first must be in [0, {n}]; got {first}")
        keys = np.zeros(n, np.int64) if keys is None else np.asarray(keys, dtype=np.int64)
        if self.mode == "stream":
            if keys.shape != (n,):
                raise EngineError(f"keys must be {n} distinct instance keys, one per render")
            self._settle()
            order, shares = self._stream_shares(keys, first)
        else:
            order, shares = self._clip_shares(n, first)
        table = np.stack([order, source, keys])
        out_shape = (n, audio.shape[1], audio.shape[2] - self.preroll)
        retries = self.retries if self.mode == "clip" else 0
        resets = {w: sorted(self._resets.pop(w)) for w, (start, _, stop) in enumerate(shares)
                  if stop > start and w in self._resets}
        explain = functools.partial(_explain, self.chain, self.mode, self._owner, params, table, label)
        job = self._backend.submit(audio, params, table, out_shape, n if first is None else first, shares, resets,
                                   retries, explain)
        if self.mode == "stream":
            self._stream_job = job
        return job

    def _settle(self) -> None:
        """Stream mode: finish the last job's renders, raising an error of theirs that nobody has seen.

        Every job advances each of its instances by one frame; a two-part job's second part is
        rendered (inline) or waited for (workers) here at the latest, before the next job or a
        reset, so the frames of a stream stay in order.
        """
        job, self._stream_job = self._stream_job, None
        if job is not None and not job.claimed:
            job.result()

    def _clip_shares(self, n: int, first: int | None) -> tuple[np.ndarray, list[tuple[int, int | None, int]]]:
        """The render order and each worker's ``(start, split, stop)`` positions in it.

        With ``first``, worker w's share is its even share of ``[0, first)`` followed by its
        even share of ``[first, n)``, reporting at the ``split`` between the two.
        """
        w = self.workers
        if first is None:
            bounds = [k * n // w for k in range(w + 1)]
            return np.arange(n), [(a, None, b) for a, b in zip(bounds[:-1], bounds[1:])]
        heads = [k * first // w for k in range(w + 1)]
        tails = [first + k * (n - first) // w for k in range(w + 1)]
        order, shares, start = [], [], 0
        for k in range(w):
            head, tail = np.arange(heads[k], heads[k + 1]), np.arange(tails[k], tails[k + 1])
            order += [head, tail]
            shares.append((start, start + len(head), start + len(head) + len(tail)))
            start += len(head) + len(tail)
        return np.concatenate(order), shares

    def _stream_shares(self, keys: np.ndarray,
                       first: int | None) -> tuple[np.ndarray, list[tuple[int, int | None, int]]]:
        """The render order and each worker's ``(start, split, stop)`` positions: the renders of
        the keys pinned to it, those of ``[0, first)`` first (split None without ``first``).

        Keys seen for the first time are pinned in order, filling each worker up to an even
        share of this call's renders. A training step asks for the same keys every time, so the
        last call's answer is kept and given again for the same keys and ``first``.
        """
        last_keys, last_answer = self._last_shares
        if last_keys is not None and last_keys[1] == first and np.array_equal(keys, last_keys[0]):
            return last_answer
        n, w = len(keys), self.workers
        if len(np.unique(keys)) != n:
            raise EngineError(f"keys must be {n} distinct instance keys, one per render")
        loads = np.bincount(np.array([self._owner[k] for k in keys.tolist() if k in self._owner], np.int64),
                            minlength=w)
        worker, target = 0, -(-n // w)
        for key in sorted(k for k in keys.tolist() if k not in self._owner):
            while loads[worker] >= target:
                worker += 1
            self._owner[key] = worker
            loads[worker] += 1
        owners = np.array([self._owner[k] for k in keys.tolist()], dtype=np.int64)
        order, shares, start = [], [], 0
        for worker in range(w):
            mine = np.flatnonzero(owners == worker)
            head, tail = (mine, mine[:0]) if first is None else (mine[mine < first], mine[mine >= first])
            order += [head, tail]
            shares.append((start, None if first is None else start + len(head), start + len(mine)))
            start += len(mine)
        answer = np.concatenate(order), shares
        self._last_shares = ((keys.copy(), first), answer)
        return answer

    def reset(self, keys: Sequence[int] | None = None) -> None:
        """Stream mode: reset the state of instances ``keys`` (None: every instance).

        Call it at stream boundaries; clip mode resets before every render on its own. With
        worker processes the resets travel with the next job's message to each worker (one
        message per worker per step): an instance is reset before it renders again.
        """
        if self.closed:
            raise EngineError(f"{describe_chain(self.chain)}: the engine is closed")
        if self.mode == "clip":
            return
        keys = None if keys is None else [int(k) for k in keys]
        self._settle()
        if self.inline:
            self._backend.reset(keys)
            return
        for key in self._owner if keys is None else keys:
            if key in self._owner:  # a key not rendered yet has a fresh instance to come
                self._resets.setdefault(self._owner[key], set()).add(key)

    def close(self) -> None:
        """Stop the workers and free the shared memory (also done on garbage collection and exit)."""
        self._finalizer()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "inline" if self.inline else f"{self.workers} workers"
        return f"Engine({describe_chain(self.chain)}, mode={self.mode!r}, {where})"


def describe_chain(chain: FxChain) -> str:
    """``chain NAME: effect (kind id) -> ...``, for messages."""
    effects = " -> ".join(f"{s.name} ({s.spec['kind']} {s.spec['id']})" for s in chain.stages)
    return f"chain {chain.name + ': ' if chain.name else ''}{effects}"


def _format_params(chain: FxChain, u: np.ndarray) -> str:
    """``effect.param = value unit, ...`` for a unit parameter vector."""
    parts = []
    for (name, value), param in zip(chain.to_native(u).items(), chain.params):
        shown = f"{value:.6g}" if isinstance(value, float) else repr(value)
        parts.append(f"{name} = {shown}{' ' + param.unit if param.unit else ''}")
    return ", ".join(parts) or "no learned parameters"


def _explain(chain: FxChain, mode: str, owner: Mapping[int, int], params: np.ndarray | None,
             table: np.ndarray | None, label: Callable[[int], str] | None,
             failures: Mapping[int, tuple[str, int]]) -> str:
    """The message for workers that died or hung: the chain, the render, its parameter values.

    A module function, not a method: a job in flight holds it, and must not keep the engine alive.
    """
    lines = []
    for w, (what, position) in sorted(failures.items()):
        line = f"worker {w} {what} while rendering {describe_chain(chain)}"
        if table is not None and position >= 0:
            i = int(table[0, position])
            context = f" ({label(i)})" if label is not None else ""
            line += f"; render {i} of {table.shape[1]}{context} with {_format_params(chain, params[i])}"
        if mode == "stream":
            lost = sum(1 for o in owner.values() if o == w)
            line += f"; the stream state of its {lost} instance(s) was lost: they restart from a reset"
        lines.append(line + "; the worker was restarted")
    return "\n".join(lines)


def _warn_daemon() -> None:
    global _daemon_warned
    if not _daemon_warned:
        _daemon_warned = True
        warnings.warn("fxlib.Engine: this is a daemonic process (a DataLoader worker?), which may not start "
                      "worker processes; rendering inline instead", RuntimeWarning, stacklevel=3)
