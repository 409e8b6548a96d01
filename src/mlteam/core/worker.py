"""Entry point of a job's worker process: `python -m mlteam.core.worker JOB_ID`.

The executor passes the platform's settings through the environment. A thread heartbeats
while the job runs, so a worker that hangs or dies is noticed by the executor's reaper.
"""

from __future__ import annotations

import contextlib
import sys
import threading

from mlteam.config import Settings
from mlteam.core.db import Database
from mlteam.core.jobs import JobContext, run_claimed


def _heartbeat(settings: Settings, job_id: str, stop: threading.Event) -> None:
    db = Database(settings.database_url)
    interval = max(0.5, settings.job_heartbeat_timeout / 6)
    ctx = JobContext(job_id, "", {}, "", settings, db, None)  # type: ignore[arg-type]
    while not stop.wait(interval):
        # A missed beat is retried; the reaper tolerates a few.
        with contextlib.suppress(Exception):
            ctx.heartbeat()
    db.dispose()


def main(argv: list[str]) -> int:
    job_id = argv[1]
    settings = Settings()
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(settings, job_id, stop), daemon=True)
    beat.start()
    try:
        run_claimed(settings, job_id)
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
