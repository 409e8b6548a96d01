"""Background jobs: rows in the database, run by an executor, never left "running" by a dead worker.

A capability registers a job kind with the function that does the work (`kind` → "module:func").
`submit` only inserts a queued row; the executor claims it with a conditional UPDATE (so several
servers can share one database), runs it in a worker process, and the worker heartbeats while it
runs. A job whose worker stopped heartbeating, or whose process is gone, is marked failed.
"""

from __future__ import annotations

import importlib
import os
import socket
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mlteam.config import Settings
from mlteam.core import audit
from mlteam.core.access import Perm, require
from mlteam.core.artifacts import ArtifactStore
from mlteam.core.db import Database, utcnow
from mlteam.core.errors import MlteamError, NotFound
from mlteam.core.models import Job, User

KINDS: dict[str, str] = {
    "training.train": "mlteam.training.service:run_training_job",
    "data.pipeline": "mlteam.data.pipelines:run_pipeline_job",
    "serving.batch_score": "mlteam.serving.batch:run_batch_score_job",
    "evaluation.evaluate": "mlteam.evaluation.service:run_evaluation_job",
}

TERMINAL = ("succeeded", "failed", "cancelled")


def worker_name(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def this_host() -> str:
    return socket.gethostname()


def submit(
    session: Session, actor: User, project_id: str, kind: str, params: dict[str, Any]
) -> Job:
    """Queue a job. The calling service has already checked the actor may start it."""
    if kind not in KINDS:
        raise MlteamError(f"unknown job kind {kind}")
    job = Job(project_id=project_id, kind=kind, params=params, created_by=actor.id)
    session.add(job)
    session.flush()
    audit.record(
        session, actor, "job.submit", f"job:{job.id}", project_id=project_id, detail={"kind": kind}
    )
    return job


def get(session: Session, actor: User, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    require(session, actor, job.project_id, Perm.job_read, what=f"job {job_id}")
    return job


def list_jobs(session: Session, actor: User, project_id: str, limit: int = 50) -> list[Job]:
    require(session, actor, project_id, Perm.job_read)
    q = select(Job).where(Job.project_id == project_id).order_by(Job.created_at.desc()).limit(limit)
    return list(session.scalars(q))


def claim_next(session: Session, worker: str) -> Job | None:
    """Take the oldest queued job, atomically: only one claimant's UPDATE matches."""
    candidates = session.scalars(
        select(Job.id).where(Job.state == "queued").order_by(Job.created_at).limit(5)
    ).all()
    for job_id in candidates:
        now = utcnow()
        claimed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "queued")
            .values(
                state="running",
                started_at=now,
                heartbeat_at=now,
                worker=worker,
                attempts=Job.attempts + 1,
            )
        ).rowcount
        if claimed:
            return session.get(Job, job_id)
    return None


def running_jobs(session: Session) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.state == "running")))


def set_worker(session: Session, job_id: str, worker: str) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(worker=worker))


def finish_if_running(session: Session, job_id: str, error: str) -> None:
    """The worker process ended; if it did not record an outcome, it died."""
    job = session.get(Job, job_id)
    if job is not None and job.state == "running":
        job.state = "failed"
        job.error = error
        job.finished_at = utcnow()
        audit.record(session, None, "job.failed", f"job:{job_id}", project_id=job.project_id)


def fail_stale(session: Session, timeout_s: float, dead_workers: set[str] | None = None) -> int:
    """Mark failed every running job whose worker is known dead or stopped heartbeating."""
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    n = 0
    for job in session.scalars(select(Job).where(Job.state == "running")):
        dead = dead_workers is not None and job.worker in dead_workers
        if dead or job.heartbeat_at is None or job.heartbeat_at < cutoff:
            job.state = "failed"
            job.finished_at = utcnow()
            job.error = (
                job.error
                or f"the worker running this job ({job.worker}) died or stopped responding"
            )
            audit.record(session, None, "job.failed", f"job:{job.id}", project_id=job.project_id)
            n += 1
    return n


@dataclass
class JobContext:
    """What a job function gets: its params, the stores, and a way to report progress."""

    job_id: str
    project_id: str
    params: dict[str, Any]
    actor_id: str
    settings: Settings
    db: Database
    artifacts: ArtifactStore
    _log: list[str] = field(default_factory=list)

    def actor(self, session: Session) -> User:
        user = session.get(User, self.actor_id)
        assert user is not None
        return user

    def progress(self, fraction: float, message: str = "") -> None:
        with self.db.session() as s:
            s.execute(
                update(Job)
                .where(Job.id == self.job_id)
                .values(
                    progress=max(0.0, min(1.0, fraction)),
                    message=message[:500],
                    heartbeat_at=utcnow(),
                )
            )
        if message:
            self.log(message)

    def log(self, line: str) -> None:
        with self.db.session() as s:
            job = s.get(Job, self.job_id)
            if job is not None:
                job.log = (job.log or "") + f"[{utcnow():%H:%M:%S}] {line}\n"

    def heartbeat(self) -> None:
        with self.db.session() as s:
            s.execute(update(Job).where(Job.id == self.job_id).values(heartbeat_at=utcnow()))


def resolve(kind: str) -> Callable[[JobContext], dict[str, Any]]:
    module, _, func = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), func)


def run_claimed(settings: Settings, job_id: str) -> None:
    """Run one claimed job to its end in this process (the worker's body)."""
    db = Database(settings.database_url)
    store = ArtifactStore(settings.artifact_root)
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.state != "running":
            return
        ctx = JobContext(
            job.id, job.project_id, dict(job.params), job.created_by, settings, db, store
        )
        kind = job.kind
    try:
        result = resolve(kind)(ctx)
        state, error = "succeeded", None
    except MlteamError as err:
        # The caller's data or settings were wrong: say so, without a platform traceback.
        # Structured details (a data-check report, say) become the failed job's result.
        details = err.details if isinstance(err.details, dict) else None
        result, state, error = details, "failed", err.message
        ctx.log(f"failed: {err.message}")
    except Exception as err:
        result, state, error = None, "failed", f"platform error: {type(err).__name__}: {err}"
        ctx.log(traceback.format_exc())
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is not None and job.state == "running":
            job.state = state
            job.error = error
            job.result = result
            job.finished_at = utcnow()
            if state == "succeeded":
                job.progress = 1.0
            audit.record(s, None, f"job.{state}", f"job:{job_id}", project_id=job.project_id)
    db.dispose()
