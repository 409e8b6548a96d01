"""`mlteam server --workers N`: N server processes that share the connections evenly.

With uvicorn's own workers every process accepts from one shared socket, and whichever is awake
takes every connection waiting: a client with a pool of 8 keep-alive connections found all 8
on one process about half the time (measured: 8/0, 7/1 or 6/2 in 6 tries of 8), so one core
did the work of two and the other idled. Here the first process only accepts, and hands each
new connection (its file descriptor, over a Unix socket pair) to the worker holding the fewest
open connections, taking turns among equals; each worker tells it when one of its connections
closes. The workers are uvicorn servers with no listening socket of their own: they adopt the
connections handed to them with uvicorn's own HTTP protocol, so requests, graceful shutdown and
logging are uvicorn's as before.

A worker that exits is started again. SIGTERM or SIGINT stops accepting and stops the workers
gracefully (each finishes its requests and flushes its prediction log); a worker whose
supervisor dies is sent SIGTERM by the kernel (Linux parent-death signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from mlteam.core.executor import die_with_parent

log = logging.getLogger("mlteam.server")

CLOSED = b"-"  # a worker's message: one of my connections closed
STOP_GRACE_SECONDS = 15  # uvicorn's graceful shutdown is 10 s
# A worker that exits this soon after its start failed to start; after FAILED_STARTS of those
# in a row the supervisor gives up (exit 1) instead of restarting them forever.
QUICK_EXIT_SECONDS = 5.0
FAILED_STARTS = 3


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    channel: socket.socket  # the supervisor's end of the pair
    started: float = field(default_factory=time.monotonic)
    connections: int = 0
    turn: int = 0  # when it last got a connection, to take turns among equals


class Supervisor:
    """Accepts on `listener`; hands connections to `n` worker processes, fewest first."""

    def __init__(self, listener: socket.socket, n: int, log_level: str) -> None:
        self.listener = listener
        self.n = n
        self.log_level = log_level
        self.workers: list[_Worker] = []
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self.failed_starts = 0
        self.exit_code = 0
        self._turns = itertools.count(1)

    def _spawn(self) -> _Worker:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlteam.server.workers", str(theirs.fileno()), self.log_level],
            pass_fds=[theirs.fileno()],
            preexec_fn=(  # noqa: PLW1509
                functools.partial(die_with_parent, signal.SIGTERM)
                if sys.platform == "linux"
                else None
            ),
        )
        theirs.close()
        mine.setblocking(False)
        worker = _Worker(proc, mine)
        self.selector.register(mine, selectors.EVENT_READ, worker)
        return worker

    def run(self) -> int:
        self.listener.setblocking(False)
        self.workers = [self._spawn() for _ in range(self.n)]
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        try:
            while not self.stopping:
                ready = [key.data for key, _ in self.selector.select(timeout=0.5)]
                for worker in ready:  # closed connections first, then the new ones
                    if worker is not None:
                        self._hear(worker)
                if None in ready:
                    self._accept()
                self._restart_dead()
        finally:
            self._shutdown()
        return self.exit_code

    def _stop(self, signum: int, _frame: Any) -> None:
        self.stopping = True

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            with conn:
                self._hand(conn)

    def _hand(self, conn: socket.socket) -> None:
        alive = [w for w in self.workers if w.proc.poll() is None]
        for worker in sorted(alive, key=lambda w: (w.connections, w.turn)):
            try:
                socket.send_fds(worker.channel, [b"+"], [conn.fileno()])
            except OSError:  # that worker is going away: the next one takes it
                continue
            worker.connections += 1
            worker.turn = next(self._turns)
            return
        log.warning("no worker to take a connection; it is closed")

    def _hear(self, worker: _Worker) -> None:
        try:
            data = worker.channel.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the worker is gone: _restart_dead starts another
            self.selector.unregister(worker.channel)
            worker.channel.close()
            worker.connections = 0
            return
        worker.connections = max(0, worker.connections - data.count(CLOSED))

    def _restart_dead(self) -> None:
        if self.stopping:
            return
        for i, worker in enumerate(self.workers):
            if worker.proc.poll() is not None:
                quick = time.monotonic() - worker.started < QUICK_EXIT_SECONDS
                self.failed_starts = self.failed_starts + 1 if quick else 0
                if self.failed_starts >= FAILED_STARTS:
                    log.error("server workers keep failing at start; stopping")
                    self.stopping, self.exit_code = True, 1
                    return
                log.warning(
                    "server worker %d exited with %s; starting another", i, worker.proc.returncode
                )
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(worker.channel)
                worker.channel.close()
                self.workers[i] = self._spawn()

    def _shutdown(self) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self.listener)
        self.listener.close()
        for worker in self.workers:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.proc.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
            worker.channel.close()


def serve(host: str, port: int, workers: int, log_level: str) -> int:
    """Bind, then supervise `workers` server processes until SIGTERM or SIGINT."""
    listener = socket.create_server((host, port), backlog=2048)
    log.info("mlteam serving on http://%s:%d with %d worker processes", host, port, workers)
    return Supervisor(listener, workers, log_level).run()


# -- the worker process -----------------------------------------------------------------------


class AdoptingServer(uvicorn.Server):
    """A uvicorn server without a socket of its own: it serves the connections the supervisor
    hands it, with uvicorn's HTTP protocol, and tells the supervisor when each one closes."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel
        self._adopting: set[asyncio.Task[Any]] = set()  # held until done (asyncio keeps none)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        if self.should_exit:
            return
        channel = self.channel

        class Counted(self.config.http_protocol_class):  # type: ignore[misc, name-defined]
            def connection_lost(self, exc: Exception | None) -> None:
                super().connection_lost(exc)
                with contextlib.suppress(OSError):
                    channel.send(CLOSED)

        self._protocol = functools.partial(
            Counted,
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        channel.setblocking(False)
        loop = asyncio.get_running_loop()
        loop.add_reader(channel.fileno(), self._adopt, loop)

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            msg, fds, _, _ = socket.recv_fds(self.channel, 64, 64)
        except (BlockingIOError, InterruptedError):
            return
        if not msg:  # the supervisor is gone
            loop.remove_reader(self.channel.fileno())
            self.should_exit = True
        for fd in fds:
            conn = socket.socket(fileno=fd)
            if self.should_exit:
                conn.close()
            else:
                task = loop.create_task(loop.connect_accepted_socket(self._protocol, conn))
                self._adopting.add(task)
                task.add_done_callback(self._adopting.discard)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
        await super().shutdown(sockets)


def worker_main(channel_fd: int, log_level: str) -> None:
    """One worker process: the app built from the environment, as `app_from_env` says."""
    config = uvicorn.Config(
        "mlteam.server.app:app_from_env",
        factory=True,
        log_level=log_level,
        timeout_graceful_shutdown=10,
    )
    AdoptingServer(config, socket.socket(fileno=channel_fd)).run()


if __name__ == "__main__":
    worker_main(int(sys.argv[1]), sys.argv[2])
