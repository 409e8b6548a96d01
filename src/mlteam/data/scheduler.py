"""The pipeline scheduler: a thread in each server that queues due runs.

Cron runs: a pipeline whose `next_run_at` has passed is claimed by a conditional UPDATE that
moves `next_run_at` on (`WHERE id = ? AND next_run_at <= now`); only the server whose UPDATE
matched queues the run, so several servers sharing one database queue it once. New input
versions: the fingerprint of the inputs' newest versions is compared with `seen_inputs` and
claimed the same way (`WHERE seen_inputs = <the old one>`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mlteam.core.db import Database, utcnow
from mlteam.core.models import User
from mlteam.data import pipelines
from mlteam.data.pipeline_models import Pipeline
from mlteam.projects import service as projects

log = logging.getLogger("mlteam.scheduler")


def _queue(db: Database, pipeline_id: str, claim: Callable, trigger: str) -> str | None:
    with db.session() as s:
        p = s.get(Pipeline, pipeline_id)
        if p is None:
            return None
        stmt = claim(s, p)
        if stmt is None or not s.execute(stmt).rowcount:
            return None  # another server got there first
        author = s.get(User, p.created_by)
        slug = projects.by_id(s, p.project_id).slug
        job = pipelines.submit_run(s, author, p, slug, dict(p.params), trigger)
        return job.id


def tick(db: Database, now: datetime | None = None) -> list[str]:
    """Queue every due run once; returns the ids of the jobs queued."""
    now = now or utcnow()
    queued: list[str] = []
    with db.session() as s:
        due = s.scalars(
            select(Pipeline.id).where(
                Pipeline.next_run_at.is_not(None), Pipeline.next_run_at <= now
            )
        ).all()
        watching = s.scalars(select(Pipeline.id).where(Pipeline.trigger_on_new_version)).all()
    for pid in due:

        def cron_claim(s: Session, p: Pipeline) -> object:
            nxt = pipelines.next_fire(p.schedule, now) if p.schedule else None
            return (
                update(Pipeline)
                .where(Pipeline.id == p.id, Pipeline.next_run_at <= now)
                .values(next_run_at=nxt)
            )

        try:
            if job_id := _queue(db, pid, cron_claim, "schedule"):
                queued.append(job_id)
        except Exception:
            log.exception("could not queue the scheduled run of pipeline %s", pid)
    for pid in watching:

        def version_claim(s: Session, p: Pipeline) -> object:
            fingerprint = pipelines.input_fingerprint(s, p)
            if fingerprint == p.seen_inputs or not fingerprint:
                return None
            return (
                update(Pipeline)
                .where(Pipeline.id == p.id, Pipeline.seen_inputs == p.seen_inputs)
                .values(seen_inputs=fingerprint)
            )

        try:
            if job_id := _queue(db, pid, version_claim, "new_version"):
                queued.append(job_id)
        except Exception:
            log.exception("could not queue the new-version run of pipeline %s", pid)
    return queued


class Scheduler:
    """Runs `tick` every `interval` seconds until stopped; wakes the executor after queueing."""

    def __init__(self, db: Database, interval: float, wake: Callable[[], None]) -> None:
        self.db, self.interval, self.wake = db, interval, wake
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="mlteam-scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if tick(self.db):
                    self.wake()
            except Exception:
                log.exception("scheduler tick failed")
