"""The driver's MLflow child-run writes, made by a writer process of their own, off Ray Tune's loop.

A trial's child run is a handful of store calls (create, params, spec artifact, epoch metrics,
the closing tags and status), tens of milliseconds of CPU with the embedded SQLite store, most of
it in MLflow's SQLAlchemy layer. Made inside Ray Tune's driver loop, Tune waited for each: on
short trials that doubled a study's time, and a slow tracking server stalled the search. A
thread does not help (those calls hold the GIL, so the loop waits just as long), so the writes
go to a process of their own: the loop only queues a message; a thread of the driver sends it as
JSON down a pipe; the writer process (`python -m harness.tracking.writer`, which imports MLflow but
not torch or Ray) makes the calls in the order sent, on another core. It holds each run's
params, metrics and tags for up to `BATCH_S` and writes them in one `log_batch`, so a short
trial's run costs three store calls (create, one batch, terminate).

Guarantees:
- whoever reads MLflow after the search (finalize, every exit that closes runs) first calls
  `flush()`, which returns once the writer process has made every call queued before it: nothing
  is lost on a normal end, a Ctrl-C or a SIGTERM;
- the writer process is in a session of its own (a terminal's Ctrl-C does not reach it) and
  ignores SIGTERM; it ends when the driver closes its pipe, after the calls already sent, so
  even a SIGKILLed driver's sent writes are made; what was still queued in the driver dies with
  it, and `harness resume` reconciles it from Ray Tune's records, as it always has;
- a call that fails (the store gone for longer than MLflow's own retries) is reported once and
  dropped, and so is what a writer process that died held; finalize then checks every run's
  params and history step by step and writes what is missing from what Ray Tune recorded.
  `ChildRuns` skips epochs already logged, so no history gets a step twice.

`HARNESS_MLFLOW_WRITES=inline` makes every call in the caller instead (debugging; the harness
overhead benchmark's "before" variant).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import IO, Any

from harness.tracking.runs import StudyRun
from harness.tracking.store import fast_commits
from harness.tracking.trials import ChildRuns, config_json

FLUSH_AT_EXIT_S = 60.0
BATCH_S = 0.05  # how long the writer process holds a run's writes to make them together
_HEADER = struct.Struct("!I")
# The `ChildRuns` methods a message may name.
CALLS = frozenset({"load_existing", "ensure", "log_epoch", "log_epochs", "close", "log_weight_histogram", "log_artifacts", "note_retry"})


class KnownSpecs:
    """The `TrialSpecs` of a writer process: what the driver computed and sent, by configuration."""

    def __init__(self) -> None:
        self.known: dict[str, tuple[str, int]] = {}

    def trial_yaml(self, config: dict[str, Any]) -> str:
        return self.known[config_json(config)][0]

    def trial_max_epochs(self, config: dict[str, Any]) -> int:
        return self.known[config_json(config)][1]


class Executor:
    """Makes the calls: the child runs of every study this driver tracks, by key; with `hold`,
    they hold their writes until `send_held` (see `ChildRuns.hold`)."""

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.runs: dict[str, ChildRuns] = {}
        self.specs: dict[str, KnownSpecs] = {}
        self.failures = 0

    def handle(self, message: tuple[Any, ...]) -> None:
        kind, key, *rest = message
        try:
            if kind == "open":
                study, scheduler = rest
                self.specs[key] = KnownSpecs()
                self.runs[key] = ChildRuns(StudyRun(**study), self.specs[key], scheduler, hold=self.hold)
            elif kind == "spec":
                config, yaml_text, max_epochs = rest
                self.specs[key].known[config] = (yaml_text, max_epochs)
            elif kind == "call":
                method, args = rest
                if method not in CALLS:
                    raise ValueError(f"not a child-run write: {method!r}")
                getattr(self.runs[key], method)(*args)
        except Exception as exc:  # the search goes on; finalize reconciles what was dropped
            self._failed(exc)

    def holding(self) -> bool:
        return any(runs.holding() for runs in self.runs.values())

    def send_held(self) -> None:
        """Write what every study's runs hold; a run whose write fails is dropped, the rest go."""
        for runs in self.runs.values():
            while runs.holding():
                try:
                    runs.send_held()
                except Exception as exc:
                    self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        if self.failures == 1:
            print(f"warning: an MLflow write failed ({type(exc).__name__}: {str(exc)[:300]}); the study goes on "
                  "and its end writes what is missing", file=sys.stderr, flush=True)  # fmt: skip


class Writer:
    """The driver's side: messages go into a queue (the loop never waits), a thread sends them to
    the writer process and runs the driver-side work queued with `later` in the same order."""

    def __init__(self, inline: bool = False) -> None:
        self.inline = inline
        self._executor = Executor() if inline else None
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._flushes = 0
        self._failures_seen = 0  # writes the writer process dropped, as of its last flush answer
        self._restarts = 0  # writer processes lost, each with whatever it held or had not read yet
        self._failures_taken = 0

    # --- what the callbacks queue ------------------------------------------------------------

    def open(self, key: str, study: StudyRun, scheduler: str) -> None:
        self._put(("open", key, asdict(study), scheduler))

    def spec(self, key: str, config: str, yaml_text: str, max_epochs: int) -> None:
        self._put(("spec", key, config, yaml_text, max_epochs))

    def call(self, key: str, method: str, *args: Any) -> None:
        self._put(("call", key, method, args))

    def later(self, work: Callable[..., Any], *args: Any) -> None:
        """Driver-side work (reading a checkpoint folder) done by the sending thread, in order."""
        if self.inline:
            work(*args)
        else:
            self._put(("later", work, args))

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every call queued so far has been made; False when `timeout_s` ran out
        first (a store that went away)."""
        if self.inline or self._thread is None:
            return True
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            self._flushes += 1
            token = self._flushes
        done = threading.Event()
        self._put(("flush", token, done))
        return done.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def take_dropped(self) -> int:
        """How many writes failed and were dropped since the last call (as of the last flush):
        their runs may have gaps that only a check of every run's history finds."""
        seen = self._executor.failures if self._executor is not None else self._failures_seen + self._restarts
        dropped, self._failures_taken = seen - self._failures_taken, seen
        return dropped

    # --- the sending thread ----------------------------------------------------------------

    def _put(self, message: tuple[Any, ...]) -> None:
        if self.inline:
            assert self._executor is not None
            self._executor.handle(message)
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._send_all, name="mlflow-writer", daemon=True)
                self._thread.start()
        self._queue.put(message)

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "harness.tracking.writer"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                start_new_session=True,  # a terminal's Ctrl-C is for the driver, which flushes first
            )  # fmt: skip
        return self._process

    def _send_all(self) -> None:
        opened: list[tuple[Any, ...]] = []  # re-sent to a writer process started again
        while True:
            message = self._queue.get()
            try:
                self._send(message, opened)
            except (OSError, EOFError, ValueError) as exc:
                print(f"warning: the MLflow writer process stopped ({type(exc).__name__}: {exc}); starting another; "
                      "the study's end writes what is missing", file=sys.stderr, flush=True)  # fmt: skip
                self._process = None
                self._restarts += 1
                if message[0] == "flush":
                    message[2].set()

    def _send(self, message: tuple[Any, ...], opened: list[tuple[Any, ...]]) -> None:
        kind = message[0]
        if kind == "later":
            message[1](*message[2])
            return
        fresh = self._process is None or self._process.poll() is not None
        process = self._started()
        assert process.stdin is not None and process.stdout is not None
        if fresh:
            for earlier in opened:
                write_message(process.stdin, earlier)
        if kind in ("open", "spec"):
            opened.append(message)
        if kind == "flush":
            write_message(process.stdin, ("flush", message[1]))
            process.stdin.flush()
            while (answer := read_message(process.stdout)) is None or tuple(answer[:2]) != ("flushed", message[1]):
                if answer is None:
                    raise EOFError("the writer process ended before answering")
            self._failures_seen = max(self._failures_seen, answer[2])
            message[2].set()
            return
        write_message(process.stdin, message)
        if self._queue.empty():
            process.stdin.flush()  # a burst goes down the pipe together

    def close(self, timeout_s: float = FLUSH_AT_EXIT_S) -> None:
        """Flush, then let the writer process end (at the driver's exit)."""
        self.flush(timeout_s)
        process = self._process
        if process is not None and process.stdin is not None:
            try:
                process.stdin.close()
                process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass


def write_message(stream: IO[bytes], message: tuple[Any, ...]) -> None:
    # JSON, not pickle: the writer process runs nothing but the calls it can name.
    data = json.dumps(message).encode()
    stream.write(_HEADER.pack(len(data)) + data)


def read_message(stream: IO[bytes]) -> tuple[Any, ...] | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    return tuple(json.loads(stream.read(_HEADER.unpack(header)[0])))


_WRITER: Writer | None = None


def writer() -> Writer:
    """This process's writer (one per driver: a comparison's executions each have a process)."""
    global _WRITER
    if _WRITER is None:
        _WRITER = Writer(inline=os.environ.get("HARNESS_MLFLOW_WRITES") == "inline")
        # A driver that leaves by an unforeseen path still makes what it queued (bounded: a store
        # that went away must not hold the process forever).
        atexit.register(_WRITER.close)
    return _WRITER


def take_dropped() -> int:
    """Writes this process's writer dropped since the last call (see `Writer.take_dropped`)."""
    return _WRITER.take_dropped() if _WRITER is not None else 0


def flush(timeout_s: float | None = None) -> bool:
    """Wait for every write queued so far in this process (False: `timeout_s` ran out first)."""
    return _WRITER.flush(timeout_s) if _WRITER is not None else True


class Reader:
    """Messages from the driver's pipe, with a timeout (the pipe's file descriptor, unbuffered)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer = fd, bytearray()

    def next(self, timeout_s: float | None) -> tuple[Any, ...] | None:
        """The next message; None when `timeout_s` passes first; EOFError when the pipe closed."""
        while True:
            if len(self.buffer) >= _HEADER.size:
                size = _HEADER.unpack_from(self.buffer)[0]
                if len(self.buffer) >= _HEADER.size + size:
                    message = tuple(json.loads(bytes(self.buffer[_HEADER.size : _HEADER.size + size])))
                    del self.buffer[: _HEADER.size + size]
                    return message
            if not select.select([self.fd], [], [], timeout_s)[0]:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise EOFError
            self.buffer += chunk


def serve(stdin_fd: int, stdout: IO[bytes]) -> None:
    """The writer process: make each call as it comes, answer flushes, end with the pipe.

    Its child runs hold their writes for up to `BATCH_S` (`ChildRuns.hold`): what reaches it
    together, such as a short trial's start, epochs and end, is one `log_batch` instead of one
    per message. The deadline, a flush and the pipe's end send what is held; the order of each
    run's writes is kept."""
    executor, reader = Executor(hold=True), Reader(stdin_fd)
    deadline: float | None = None
    while True:
        if deadline is not None and time.monotonic() >= deadline:  # also when messages never pause
            executor.send_held()
            deadline = None
        try:
            message = reader.next(None if deadline is None else max(0.0, deadline - time.monotonic()))
        except EOFError:
            executor.send_held()
            return
        if message is None:
            continue  # the deadline passed: sent above
        if message[0] == "flush":
            executor.send_held()
            deadline = None
            write_message(stdout, ("flushed", message[1], executor.failures))
            stdout.flush()
            continue
        executor.handle(message)
        if deadline is None and executor.holding():
            deadline = time.monotonic() + BATCH_S


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the driver decides when it is done
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fast_commits()
    # The pipe to the driver is for answers only: anything printed goes to stderr instead.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.fileno(), answers)
