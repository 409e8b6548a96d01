"""Crashes leave nothing half-written: a real server process killed with SIGKILL."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from mlteam import Client
from mlteam.config import Settings
from mlteam.core import jobs
from mlteam.core.auth import create_user
from mlteam.core.db import utcnow
from mlteam.core.executor import LocalExecutor
from mlteam.core.models import Job
from mlteam.projects.service import create_project
from mlteam.server.platform import Platform
from tests.conftest import uid

pytestmark = pytest.mark.slow


def _admin(srv) -> Client:
    token = srv.cli("users", "create", f"{uid('root')}@example.com", "--admin").stdout.split()[-1]
    return Client(srv.url, token, timeout=30)


def _wide_csv(path: Path, rows: int) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, 20)), columns=[f"f{i}" for i in range(20)])
    frame["label"] = rng.integers(0, 2, rows)
    # Arrow's writer: pandas' takes ~12 s for 300,000 rows of full-precision floats
    pa_csv.write_csv(
        pa.Table.from_pandas(frame, preserve_index=False),
        path,
        pa_csv.WriteOptions(quoting_style="none"),
    )
    return path


def test_kill_during_upload_leaves_no_half_written_version(server_factory, tmp_path) -> None:
    csv = _wide_csv(tmp_path / "big.csv", 300_000)  # ~110 MB: parse + write take a while
    srv = server_factory().start()
    c = _admin(srv)
    slug = uid("kill")
    c.create_project(slug)
    token = c._http.headers["authorization"]
    for delay in (0.5, 2.0, 4.0):

        def send() -> None:
            try:
                with csv.open("rb") as fh:
                    httpx.post(
                        f"{srv.url}/api/v1/projects/{slug}/datasets/big/versions",
                        params={"format": "csv"},
                        content=fh,
                        headers={"Authorization": token},
                        timeout=60,
                    )
            except httpx.HTTPError:
                pass  # the server died under us: that is the point

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(delay)
        srv.kill()
        sender.join()
        srv.start()
        c = Client(srv.url, token.split()[-1], timeout=30)
        # Either a complete version is visible, or none: never a partial one.
        try:
            versions = c.dataset_versions(slug, "big")
        except Exception:
            versions = []
        for v in versions:
            assert v["row_count"] == 300_000
            out = c.download(slug, "big", v["n"], tmp_path / f"v{v['n']}.parquet")
            assert pq.read_metadata(out).num_rows == 300_000
    # Whatever sits under its final name in the store is whole (partial writes keep a
    # ".tmp-" name and are never referenced).
    for f in (srv.home / "artifacts").rglob("*.parquet"):
        assert pq.read_metadata(f).num_rows == 300_000


def test_kill_during_training_marks_job_failed_and_registers_nothing(
    server_factory, tmp_path
) -> None:
    csv = _wide_csv(tmp_path / "train.csv", 60_000)
    srv = server_factory().start()
    c = _admin(srv)
    slug = uid("killjob")
    c.create_project(slug)
    c.upload(slug, "data", csv)
    job = c.train(slug, "data", "label", register_as="m")
    deadline = time.monotonic() + 60
    while c.job(job["id"])["state"] == "queued" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert c.job(job["id"])["state"] == "running"
    srv.kill()
    time.sleep(1)  # the worker dies with the server (parent-death signal)
    worker_left = subprocess.run(
        ["pgrep", "-f", f"mlteam.core.worker {job['id']}"], capture_output=True
    )
    assert worker_left.returncode == 1, "the job's worker outlived the server"
    srv.start()
    token = c._http.headers["authorization"].split()[-1]
    c = Client(srv.url, token, timeout=30)
    after = c.job(job["id"])
    assert after["state"] == "failed"
    assert "died" in after["error"]
    assert c.models(slug) == []
    # No run claims to be finished without its model file.
    for run in c.runs(slug):
        if (
            run["status"] == "FINISHED"
            and run["kind"] in ("baseline", "training")
            and run["parent_run_id"]
        ):
            files = {a["path"] for a in c.artifacts(run["id"], "model")}
            assert {"model.skops", "mlteam-model.json"} <= files


def test_a_job_claimed_under_the_servers_own_pid_is_failed_at_the_next_start(
    databases, tmp_path
) -> None:
    """A server killed between claiming a job and starting its worker leaves the job in its
    own name; in a container the next server often has that same pid (pid 1)."""
    settings = Settings(home=tmp_path, db_url=databases.new(), job_heartbeat_timeout=600)
    platform = Platform(settings)  # migrates; not started
    with platform.db.session() as s:
        user, _ = create_user(s, None, f"{uid('admin')}@example.com", admin=True)
        project = create_project(s, user, uid("orphan"))
        job = jobs.submit(s, user, project.id, "training.train", {})
        job.state, job.worker, job.heartbeat_at = "running", jobs.worker_name(), utcnow()
        job_id = job.id
    executor = LocalExecutor(settings, platform.db)
    executor.start()
    executor.stop()
    with platform.db.session() as s:
        after = s.get(Job, job_id)
        assert after.state == "failed" and "died" in after.error
    platform.db.dispose()


def test_worker_killed_alone_marks_job_failed(server_factory, tmp_path) -> None:
    csv = _wide_csv(tmp_path / "train.csv", 60_000)
    srv = server_factory().start()
    c = _admin(srv)
    slug = uid("killworker")
    c.create_project(slug)
    c.upload(slug, "data", csv)
    job = c.train(slug, "data", "label")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = subprocess.run(
            ["pgrep", "-f", f"mlteam.core.worker {job['id']}"], capture_output=True, text=True
        )
        if found.returncode == 0:
            break
        time.sleep(0.1)
    subprocess.run(["pkill", "-9", "-f", f"mlteam.core.worker {job['id']}"], check=True)
    with pytest.raises(Exception, match="failed"):
        c.wait(job["id"], timeout=60)
    after = c.job(job["id"])
    assert after["state"] == "failed" and "exited" in after["error"]
