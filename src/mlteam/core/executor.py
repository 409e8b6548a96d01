"""The local executor: a small pool of worker processes fed from the jobs table.

Each job runs in its own `python -m mlteam.core.worker` process, so a crash in user code or a
native library takes down that job only. Worker processes die with the server (Linux
parent-death signal); the reaper then marks their jobs failed, at once for workers of this
host it knows are gone, and by heartbeat timeout for any other.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading

from mlteam.config import Settings
from mlteam.core import jobs
from mlteam.core.db import Database

log = logging.getLogger("mlteam.executor")


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Have the kernel send `sig` to this process when its parent dies (Linux). Runs in the
    child between fork and exec (`preexec_fn`)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG


def settings_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["MLTEAM_HOME"] = str(settings.home)
    env["MLTEAM_DB_URL"] = settings.database_url
    env["MLTEAM_ARTIFACTS"] = settings.artifact_root
    env["MLTEAM_JOB_HEARTBEAT_TIMEOUT"] = str(settings.job_heartbeat_timeout)
    env["MLTEAM_PIPELINE_MEMORY_LIMIT"] = settings.pipeline_memory_limit
    if settings.secret_key is not None:
        env["MLTEAM_SECRET_KEY"] = settings.secret_key.get_secret_value()
    if settings.source_roots is not None:
        env["MLTEAM_SOURCE_ROOTS"] = settings.source_roots
    return env


class LocalExecutor:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._threads:
            return
        with self.db.session() as s:
            # Jobs this host ran before a restart cannot still be running.
            host = jobs.this_host() + ":"
            running = {
                j.worker for j in jobs.running_jobs(s) if j.worker and j.worker.startswith(host)
            }
            dead = {w for w in running if _gone(int(w.rsplit(":", 1)[1]))}
            jobs.fail_stale(s, self.settings.job_heartbeat_timeout, dead)
        for i in range(self.settings.workers):
            t = threading.Thread(target=self._loop, name=f"mlteam-executor-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        reaper = threading.Thread(target=self._reap_loop, name="mlteam-reaper", daemon=True)
        reaper.start()
        self._threads.append(reaper)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:
            procs = list(self._procs.values())
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self.db.session() as s:
                    # Claimed in this process's name until its worker has a pid, so a server
                    # killed between the two leaves a job that the next start fails at once.
                    job = jobs.claim_next(s, jobs.worker_name())
                    job_id = job.id if job else None
            except Exception:
                log.exception("could not claim a job")
                job_id = None
            if job_id is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self._run(job_id)

    def _run(self, job_id: str) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlteam.core.worker", job_id],
            env=settings_env(self.settings),
            preexec_fn=die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        with self._lock:
            self._procs[job_id] = proc
        with self.db.session() as s:
            jobs.set_worker(s, job_id, jobs.worker_name(proc.pid))
        code = proc.wait()
        with self._lock:
            self._procs.pop(job_id, None)
        with self.db.session() as s:
            jobs.finish_if_running(s, job_id, f"the worker process exited with code {code}")

    def _reap_loop(self) -> None:
        while not self._stop.wait(max(1.0, self.settings.job_heartbeat_timeout / 3)):
            try:
                with self.db.session() as s:
                    jobs.fail_stale(s, self.settings.job_heartbeat_timeout)
            except Exception:
                log.exception("reaper failed")


def _gone(pid: int) -> bool:
    """Whether a process of this host that claimed a job can no longer be running it.

    Our own pid counts as gone: it was claimed by an earlier server that had this pid (in a
    container the server is often pid 1 on every start).
    """
    return pid == os.getpid() or not _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
