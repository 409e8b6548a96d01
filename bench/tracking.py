"""Tracking throughput and search latency: mlteam against MLflow's own server.

    python bench/tracking.py            # full run (~10,000 runs searched)
    python bench/tracking.py --quick    # smoke run (1,000 runs, fewer calls), under a minute

Both servers run on loopback on SQLite in one temporary folder: `mlflow server` (uvicorn,
two workers, its default setup) and `mlteam server`. Both are driven by the same function
(`client_bench`) running the stock `mlflow` client in a subprocess per server, so no client
state leaks from one to the other; only MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN differ.

Measured, per server:

1. log_metric: metrics/s with `MlflowClient().log_metric`, one call per metric;
2. log_batch: metrics/s with `log_batch` of 1,000 metrics per call;
3. create_run: runs/s, each run = create_run, log_batch(5 params), log_batch(5 metrics),
   set_terminated (4 calls);
4. search: median latency of `search_runs([exp], "metrics.m0 > 0.5 and params.p0 = 'a'",
   max_results=100)` over an experiment of 10,000 runs (5 params, 5 metrics each).

The 10,000 searched runs are not created over HTTP (that would take most of the time budget);
each store is filled in-process with what its API would store: MLflow's through its own
schema (one run through `SqlAlchemyStore.create_run` + `log_batch`, the rest as the same rows
in bulk), mlteam's through its service layer (`tracking.service.create_run` + `log_batch`).
Both get the same values (seeded RNG); the number of runs matching the filter is checked to be
the same on both servers.

A third server, a no-op uvicorn stub, gets the same calls (its search answers a canned page of
100 matching runs): its figures are the client's own ceiling on this machine
(`client_ceiling_*`), so `max_possible_ratio` says how far any server could beat MLflow through
the stock client. The full run does three rounds (servers in
alternating order) and reports each figure's median over rounds, with every round kept.

Progress goes to stderr; one JSON line with every figure goes to stdout. Ratios are
mlteam / MLflow for throughputs and MLflow / mlteam for latency: above 1, mlteam is faster.
The bench reports; it asserts nothing. All servers are stopped at the end, also on errors and
Ctrl-C; on failure the server and client logs are copied to a kept folder (printed), and
`--keep` keeps the whole temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

SEARCH_FILTER = "metrics.m0 > 0.5 and params.p0 = 'a'"
SEED = 20240611
ADMIN = "bench@example.com"
PROJECT = "bench"

FULL = {
    "runs": 10_000,
    "log_metric_calls": 300,
    "log_batch_calls": 30,
    "create_runs": 200,
    "search_reps": 30,
    "search_warmups": 3,
    "rounds": 3,
}
QUICK = {
    "runs": 1_000,
    "log_metric_calls": 50,
    "log_batch_calls": 3,
    "create_runs": 20,
    "search_reps": 10,
    "search_warmups": 2,
    "rounds": 1,
}
# Every server and client process: logs unbuffered (complete even if killed), and no MLflow
# usage telemetry (a background thread that phones home; in the client it can also race the
# request path: "failed with exception '_MLFLOW_TELEMETRY_SESSION_ID'").
QUIET_ENV = {"PYTHONUNBUFFERED": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
TARGETS = {"write_ratio": 5.0, "search_ratio": 10.0, "search_10k_median_ms": 50.0}


_T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"[bench {time.monotonic() - _T0:5.1f}s] {msg}", file=sys.stderr, flush=True)


# -- the client side: the same function for both servers ----------------------------------------


def client_bench(cfg: dict[str, Any]) -> dict[str, Any]:
    """Drive the server at MLFLOW_TRACKING_URI with the stock client; return raw figures."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    rng = random.Random(SEED + 1)
    client = MlflowClient()
    exp_id = client.create_experiment(f"writes-{os.getpid()}")
    out: dict[str, Any] = {}

    def now() -> int:
        return int(time.time() * 1000)

    # 1. log_metric, one call per metric
    run_id = client.create_run(exp_id, run_name="log-metric").info.run_id
    for i in range(5):  # warm-up: connections, caches
        client.log_metric(run_id, "warm", float(i), step=i)
    n = cfg["log_metric_calls"]
    t0 = time.perf_counter()
    for i in range(n):
        client.log_metric(run_id, "loss", 1.0 / (i + 1), step=i)
    out["log_metric_s"] = time.perf_counter() - t0
    out["log_metric_per_s"] = n / out["log_metric_s"]
    client.set_terminated(run_id)

    # 2. log_batch, 1,000 metrics per call (100 keys x 10 steps)
    run_id = client.create_run(exp_id, run_name="log-batch").info.run_id
    calls = cfg["log_batch_calls"]
    batches = []
    for c in range(calls + 1):
        ts = now()
        batches.append(
            [Metric(f"m{j % 100}", rng.random(), ts, c * 10 + j // 100) for j in range(1000)]
        )
    client.log_batch(run_id, metrics=batches[0])  # warm-up
    t0 = time.perf_counter()
    for batch in batches[1:]:
        client.log_batch(run_id, metrics=batch)
    out["log_batch_s"] = time.perf_counter() - t0
    out["log_batch_metrics_per_s"] = calls * 1000 / out["log_batch_s"]
    client.set_terminated(run_id)

    # 3. runs with 5 params and 5 metrics: 4 calls each
    def one_run(i: int) -> None:
        rid = client.create_run(exp_id, run_name=f"r{i}").info.run_id
        client.log_batch(rid, params=[Param(f"p{j}", rng.choice("ab")) for j in range(5)])
        ts = now()
        client.log_batch(rid, metrics=[Metric(f"m{j}", rng.random(), ts, 0) for j in range(5)])
        client.set_terminated(rid)

    for i in range(3):  # warm-up
        one_run(-1 - i)
    n = cfg["create_runs"]
    t0 = time.perf_counter()
    for i in range(n):
        one_run(i)
    out["create_run_s"] = time.perf_counter() - t0
    out["create_run_per_s"] = n / out["create_run_s"]

    # 4. search over the pre-filled experiment
    search_exp = cfg.get("search_experiment_id")
    if search_exp is None:  # the stub server: writes only
        return out

    def search(max_results: int = 100) -> list[Any]:
        return client.search_runs(
            [search_exp], filter_string=SEARCH_FILTER, max_results=max_results
        )

    for _ in range(cfg["search_warmups"]):
        search()
    times, sizes = [], set()
    for _ in range(cfg["search_reps"]):
        t0 = time.perf_counter()
        found = search()
        times.append((time.perf_counter() - t0) * 1000)
        sizes.add(len(found))
    out["search_ms"] = times
    out["search_median_ms"] = statistics.median(times)
    out["search_p90_ms"] = sorted(times)[int(0.9 * (len(times) - 1))]
    out["search_page_sizes"] = sorted(sizes)
    # Every match in one call: a check that both stores hold the same data, and a figure.
    t0 = time.perf_counter()
    everything = search(50_000)
    out["search_all_ms"] = (time.perf_counter() - t0) * 1000
    out["search_matches"] = len(everything)
    ok = all(
        r.data.params.get("p0") == "a" and r.data.metrics.get("m0", 0) > 0.5 for r in everything
    )
    out["search_results_match_filter"] = ok
    return out


def client_main() -> None:
    """`--client`: import the client first (the import overlaps server startup), then read
    the settings on stdin, run, print the figures as one JSON line."""
    import mlflow  # noqa: F401

    print("ready", flush=True)
    cfg = json.loads(sys.stdin.read())
    if cfg.get("token"):  # known only once the server is up; the client reads it per request
        os.environ["MLFLOW_TRACKING_TOKEN"] = cfg["token"]
    print(json.dumps(client_bench(cfg)), flush=True)


# -- the data the search runs over ---------------------------------------------------------------


def search_data(n: int) -> list[dict[str, Any]]:
    """n runs: 5 params p0..p4 (p0 in a/b) and 5 metrics m0..m4 in [0, 1); the same for both."""
    rng = random.Random(SEED)
    base = int(time.time() * 1000) - n
    return [
        {
            "name": f"search-{i}",
            "start_time": base + i,
            "params": {
                f"p{j}": rng.choice("ab") if j == 0 else str(rng.randint(0, 9)) for j in range(5)
            },
            "metrics": {f"m{j}": rng.random() for j in range(5)},
        }
        for i in range(n)
    ]


def fill_mlflow(db_uri: str, artifact_root: str, runs: list[dict[str, Any]]) -> str:
    """MLflow's store, in-process: the first run through its API, the rest as the same rows."""
    import logging
    import uuid

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    from mlflow.entities import LifecycleStage, Metric, Param, RunStatus, SourceType
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
    from mlflow.utils.uri import append_to_uri_path

    store = SqlAlchemyStore(db_uri, artifact_root)
    exp_id = store.create_experiment("search")
    exp = store.get_experiment(exp_id)
    user = "bench"

    first = runs[0]
    run = store.create_run(exp_id, user, first["start_time"], [], first["name"])
    ts = first["start_time"]
    store.log_batch(
        run.info.run_id,
        metrics=[Metric(k, v, ts, 0) for k, v in first["metrics"].items()],
        params=[Param(k, v) for k, v in first["params"].items()],
        tags=[],
    )

    tables: dict[str, list[dict[str, Any]]] = {"runs": [], "tags": [], "params": [], "metrics": []}
    for r in runs[1:]:
        rid = uuid.uuid4().hex
        ts = r["start_time"]
        tables["runs"].append(
            {
                "run_uuid": rid,
                "name": r["name"],
                "source_type": SourceType.to_string(SourceType.UNKNOWN),
                "source_name": "",
                "entry_point_name": "",
                "user_id": user,
                "status": RunStatus.to_string(RunStatus.RUNNING),
                "start_time": ts,
                "end_time": None,
                "deleted_time": None,
                "source_version": "",
                "lifecycle_stage": LifecycleStage.ACTIVE,
                "artifact_uri": append_to_uri_path(exp.artifact_location, rid, "artifacts"),
                "experiment_id": int(exp_id),
            }
        )
        tables["tags"].append({"run_uuid": rid, "key": MLFLOW_RUN_NAME, "value": r["name"]})
        tables["params"] += [
            {"run_uuid": rid, "key": k, "value": v} for k, v in r["params"].items()
        ]
        tables["metrics"] += [
            {"run_uuid": rid, "key": k, "value": v, "timestamp": ts, "step": 0, "is_nan": False}
            for k, v in r["metrics"].items()
        ]
    models = {"runs": SqlRun, "tags": SqlTag, "params": SqlParam, "metrics": SqlMetric}
    with store.ManagedSessionMaker(read_only=False) as session:
        for name, rows in tables.items():
            if rows:
                session.execute(models[name].__table__.insert(), rows)
        if tables["metrics"]:  # one point per key: the latest is that point
            session.execute(SqlLatestMetric.__table__.insert(), tables["metrics"])
    store.engine.dispose()
    return str(exp_id)


def fill_mlteam(db_url: str, runs: list[dict[str, Any]], chunk: int = 500) -> str:
    """mlteam's service layer, in-process: create_run + log_batch, as the MLflow API calls it."""
    from mlteam.core.auth import get_user_by_email
    from mlteam.core.db import Database
    from mlteam.tracking import service as tracking

    db = Database(db_url)
    try:
        with db.session() as s:
            user = get_user_by_email(s, ADMIN)
            exp_id = tracking.get_or_create_experiment(s, user, PROJECT, "search").id
        for lo in range(0, len(runs), chunk):
            with db.session() as s:
                user = get_user_by_email(s, ADMIN)
                exp = tracking.get_experiment(s, user, exp_id)
                for r in runs[lo : lo + chunk]:
                    run = tracking.create_run(s, user, exp, name=r["name"])
                    run.start_time = r["start_time"]  # what runs/create does with start_time
                    tracking.log_batch(
                        s,
                        user,
                        run.id,
                        params=r["params"],
                        metrics=[
                            {"key": k, "value": v, "step": 0, "timestamp": r["start_time"]}
                            for k, v in r["metrics"].items()
                        ],
                    )
    finally:
        db.dispose()
    return exp_id


# -- servers ---------------------------------------------------------------------------------------


@functools.cache
def stub_search_page() -> dict[str, Any]:
    """100 runs as a search answers them (5 params, 5 metrics, 2 tags each), all matching the
    filter: the stub's search costs the client only its own parsing and the round trip."""
    rng = random.Random(SEED)
    ts = int(time.time() * 1000)
    runs = []
    for i in range(100):
        rid = f"{i:032x}"
        runs.append(
            {
                "info": {
                    "run_id": rid,
                    "run_uuid": rid,
                    "run_name": f"search-{i}",
                    "experiment_id": "1",
                    "user_id": "stub",
                    "status": "FINISHED",
                    "start_time": ts - i,
                    "end_time": ts,
                    "artifact_uri": f"mlflow-artifacts:/1/{rid}/artifacts",
                    "lifecycle_stage": "active",
                },
                "data": {
                    "metrics": [
                        {
                            "key": f"m{j}",
                            "value": 0.5 + rng.random() / 2,
                            "timestamp": ts,
                            "step": 0,
                        }
                        for j in range(5)
                    ],
                    "params": [{"key": f"p{j}", "value": "a"} for j in range(5)],
                    "tags": [
                        {"key": "mlflow.runName", "value": f"search-{i}"},
                        {"key": "mlflow.user", "value": "stub"},
                    ],
                },
                "inputs": {},
                "outputs": {},
            }
        )
    return {"runs": runs}


async def stub_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A server that stores nothing: every MLflow call answers at once. Driving it with the
    same client gives the client's own ceiling (its per-call cost plus uvicorn's HTTP), i.e.
    the most any server could score on the write figures on this machine."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body: dict[str, Any] = {}
    if scope["path"].endswith("/runs/create"):
        rid = os.urandom(16).hex()
        body = {
            "run": {
                "info": {
                    "run_id": rid,
                    "run_uuid": rid,
                    "experiment_id": "1",
                    "run_name": "stub",
                    "status": "RUNNING",
                    "start_time": int(time.time() * 1000),
                    "lifecycle_stage": "active",
                    "artifact_uri": f"mlflow-artifacts:/1/{rid}/artifacts",
                    "user_id": "stub",
                },
                "data": {},
            }
        }
    elif scope["path"].endswith("/experiments/create"):
        body = {"experiment_id": "1"}
    elif scope["path"].endswith("/runs/search"):
        body = stub_search_page()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process in its own session (so it and its workers are stopped together)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path, health: str):
        self.name, self.cmd, self.env, self.log, self.health = name, cmd, env, log, health
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.cmd,
                env={**self.env, **QUIET_ENV},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def wait_healthy(self, timeout: float = 120) -> None:
        import httpx

        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.health, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} server not healthy after {timeout:.0f} s")

    def cpu_seconds(self) -> float:
        """CPU time used so far by every process of the server's group (Linux /proc)."""
        assert self.proc is not None
        total, tick = 0.0, os.sysconf("SC_CLK_TCK")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == self.proc.pid:  # pgrp
                total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        return total

    def wait_idle(self, timeout: float = 90, busy: float = 0.05) -> float:
        """Wait until the server and its helper processes stop using CPU (below `busy` of a
        core over a second): MLflow keeps starting job-runner processes after /health answers,
        and they would otherwise compete with the measurement. Returns the seconds waited."""
        if not Path("/proc/self/stat").exists():
            time.sleep(5)
            return 5.0
        t0 = time.monotonic()
        before = self.cpu_seconds()
        while time.monotonic() - t0 < timeout:
            time.sleep(1)
            now = self.cpu_seconds()
            if now - before < busy:
                break
            before = now
        return time.monotonic() - t0

    def terminate(self) -> None:
        """SIGTERM to the server's process group (it runs in its own session)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def finish(self, deadline: float) -> None:
        """Wait for it until `deadline` (monotonic), then SIGKILL what is left of the group."""
        if self.proc is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):  # workers left behind, if any
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class ClientProcess:
    """`client_bench` in its own interpreter, started early so its imports overlap startup."""

    def __init__(self, name: str, uri: str, log: Path) -> None:
        self.name, self.uri, self.log = name, uri, log
        self.ready = False
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update(QUIET_ENV)
        env["MLFLOW_TRACKING_URI"] = uri
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--client"],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )

    def wait_ready(self) -> None:
        """Block until the client has imported mlflow (so its import does not overlap a
        measurement)."""
        assert self.proc.stdout is not None
        if self.ready:
            return
        self.ready = self.proc.stdout.readline().strip() == "ready"
        if not self.ready:
            self.proc.wait()
            raise RuntimeError(
                f"{self.name} client did not start:\n{self.log.read_text(errors='replace')[-3000:]}"
            )

    def run(self, cfg: dict[str, Any]) -> dict[str, Any]:
        self.wait_ready()
        say(f"{self.name}: client benchmark against {self.uri}")
        t0 = time.perf_counter()
        stdout, _ = self.proc.communicate(json.dumps(cfg), timeout=900)
        tail = self.log.read_text(errors="replace")[-4000:]
        if self.proc.returncode != 0:
            raise RuntimeError(f"{self.name} client failed ({self.proc.returncode}):\n{tail}")
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"{self.name} client printed no result:\n{stdout[-2000:]}{tail}")
        say(f"{self.name}: client done in {time.perf_counter() - t0:.1f} s")
        return json.loads(lines[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def cli_token(env: dict[str, str]) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "mlteam.cli.main", "users", "create", ADMIN, "--admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if res.returncode != 0:
        raise RuntimeError(f"mlteam users create failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout.strip().splitlines()[-1]


# -- the whole bench -------------------------------------------------------------------------------


def git_state() -> dict[str, Any]:
    """The mlteam checkout measured: commit, and whether the working tree had changes."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    status = git("status", "--porcelain", "--", "src")
    return {"commit": git("rev-parse", "--short", "HEAD"), "src_dirty": bool(status)}


def versions() -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "mlteam": version("mlteam"),
        "mlteam_git": git_state(),
        "mlflow": version("mlflow"),
        "sqlalchemy": version("sqlalchemy"),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


FIGURES = (
    "log_metric_per_s",
    "log_batch_metrics_per_s",
    "create_run_per_s",
    "search_median_ms",
    "search_p90_ms",
    "search_all_ms",
)


def merge_rounds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's rounds: the median of each figure, every round's figures kept."""
    figures = [k for k in FIGURES if k in results[0]]
    merged: dict[str, Any] = {k: statistics.median(r[k] for r in results) for k in figures}
    merged["rounds"] = {k: [round(r[k], 2) for r in results] for k in figures}
    if "search_matches" not in results[0]:  # the stub: writes only
        return merged
    merged["search_matches"] = sorted({r["search_matches"] for r in results})
    if len(merged["search_matches"]) == 1:
        merged["search_matches"] = merged["search_matches"][0]
    merged["search_page_sizes"] = sorted({n for r in results for n in r["search_page_sizes"]})
    merged["search_results_match_filter"] = all(r["search_results_match_filter"] for r in results)
    return merged


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def bench(quick: bool, tmp: Path) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    load_start = os.getloadavg()
    measured = versions()  # the code the servers load now, not after a commit made meanwhile
    runs = search_data(sizes["runs"])
    mlflow_dir, mlteam_dir = tmp / "mlflow", tmp / "mlteam"
    mlflow_dir.mkdir()
    mlteam_dir.mkdir()
    mlflow_port, mlteam_port, stub_port = free_port(), free_port(), free_port()
    db_uri = f"sqlite:///{mlflow_dir / 'mlflow.db'}"
    mlteam_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLTEAM_")},
        "MLTEAM_HOME": str(mlteam_dir),
        "MLTEAM_DB_URL": f"sqlite:///{mlteam_dir / 'mlteam.db'}",
    }

    # All servers and client interpreters start at once; each store is filled as soon as its
    # server has created the schema. Fill times are therefore taken while the other processes
    # boot (reported, not compared). Measuring starts once every server is idle.
    say("starting the servers (mlflow, mlteam, a no-op stub) and their clients")
    servers["stub"] = Server(
        "stub",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(Path(__file__).resolve().parent),
            "tracking:stub_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(stub_port),
            "--log-level",
            "warning",
        ],
        {**os.environ},
        tmp / "stub-server.log",
        f"http://127.0.0.1:{stub_port}/health",
    ).start()
    servers["mlteam"] = Server(
        "mlteam",
        [
            sys.executable,
            "-m",
            "mlteam.cli.main",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(mlteam_port),
        ],
        mlteam_env,
        mlteam_dir / "server.log",
        f"http://127.0.0.1:{mlteam_port}/api/v1/health",
    ).start()
    servers["mlflow"] = Server(
        "mlflow",
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            db_uri,
            "--artifacts-destination",
            str(mlflow_dir / "mlartifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
            "--workers",
            "2",
        ],
        {**os.environ},
        mlflow_dir / "server.log",
        f"http://127.0.0.1:{mlflow_port}/health",
    ).start()
    uris = {
        "mlflow": f"http://127.0.0.1:{mlflow_port}",
        "mlteam": f"http://127.0.0.1:{mlteam_port}/mlflow/{PROJECT}",
        "stub": f"http://127.0.0.1:{stub_port}",
    }
    for name, uri in uris.items():
        clients[name] = ClientProcess(name, uri, tmp / f"{name}-client.log")

    # mlteam: first admin through the CLI, project through the API, search data in-process.
    servers["mlteam"].wait_healthy()
    from mlteam import Client

    token = cli_token(mlteam_env)
    with Client(f"http://127.0.0.1:{mlteam_port}", token) as c:
        c.create_project(PROJECT)
    say(f"mlteam: filling {len(runs)} runs in-process (service layer)")
    t0 = time.perf_counter()
    mlteam_exp = fill_mlteam(mlteam_env["MLTEAM_DB_URL"], runs)
    fill_mlteam_s = time.perf_counter() - t0
    say(f"mlteam: filled in {fill_mlteam_s:.1f} s")

    # MLflow: its server created the schema before answering /health.
    servers["mlflow"].wait_healthy()
    say(f"mlflow: filling {len(runs)} runs in-process (SqlAlchemyStore)")
    t0 = time.perf_counter()
    mlflow_exp = fill_mlflow(db_uri, "mlflow-artifacts:/", runs)
    fill_mlflow_s = time.perf_counter() - t0
    say(f"mlflow: filled in {fill_mlflow_s:.1f} s")

    servers["stub"].wait_healthy()
    say("all servers up; waiting until they are idle")
    idle = {name: round(srv.wait_idle(), 1) for name, srv in servers.items()}
    say("idle after " + ", ".join(f"{t} s ({name})" for name, t in idle.items()))

    cfg = {k: sizes[k] for k in sizes if k not in ("runs", "rounds")}
    cfgs = {
        "mlflow": {**cfg, "search_experiment_id": mlflow_exp},
        "mlteam": {**cfg, "search_experiment_id": mlteam_exp, "token": token},
        "stub": {**cfg, "search_experiment_id": "1"},  # answers a canned page of 100 runs
    }
    # Rounds alternate which server goes first; each figure is the median over rounds, so a
    # burst of load from elsewhere on the machine moves it less.
    rounds: dict[str, list[dict[str, Any]]] = {"mlflow": [], "mlteam": [], "stub": []}
    for rnd in range(sizes["rounds"]):
        order = ["mlflow", "mlteam", "stub"] if rnd % 2 == 0 else ["stub", "mlteam", "mlflow"]
        if rnd:
            for name in order:
                clients[name] = ClientProcess(name, uris[name], tmp / f"{name}-client.log")
            for name in order:
                clients[name].wait_ready()
        for name in order:
            r = clients[name].run(cfgs[name])
            rounds[name].append(r)
            search = (
                f", search median {r['search_median_ms']:.1f} ms ({r['search_matches']} matches)"
                if "search_median_ms" in r
                else ""
            )
            say(
                f"{name} round {rnd + 1}/{sizes['rounds']}: log_metric {r['log_metric_per_s']:.0f}/s, "
                f"log_batch {r['log_batch_metrics_per_s']:.0f} metrics/s, "
                f"runs {r['create_run_per_s']:.1f}/s{search}"
            )
    raw = {name: merge_rounds(rs) for name, rs in rounds.items()}
    mt, mf = raw["mlteam"], raw["mlflow"]
    out: dict[str, Any] = {
        "bench": "tracking",
        "quick": quick,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "runs_searched": len(runs),
        "log_metric_ratio": ratio(mt["log_metric_per_s"], mf["log_metric_per_s"]),
        "log_batch_ratio": ratio(mt["log_batch_metrics_per_s"], mf["log_batch_metrics_per_s"]),
        "create_run_ratio": ratio(mt["create_run_per_s"], mf["create_run_per_s"]),
        "search_ratio": ratio(mf["search_median_ms"], mt["search_median_ms"]),
        "search_10k_median_ms": round(mt["search_median_ms"], 2),
    }
    for name in ("mlteam", "mlflow"):
        r = raw[name]
        out[f"{name}_log_metric_per_s"] = round(r["log_metric_per_s"], 1)
        out[f"{name}_log_batch_metrics_per_s"] = round(r["log_batch_metrics_per_s"], 1)
        out[f"{name}_create_run_per_s"] = round(r["create_run_per_s"], 2)
        out[f"{name}_search_median_ms"] = round(r["search_median_ms"], 2)
        out[f"{name}_search_p90_ms"] = round(r["search_p90_ms"], 2)
        out[f"{name}_search_all_ms"] = round(r["search_all_ms"], 1)
        out[f"{name}_search_matches"] = r["search_matches"]
        out[f"{name}_search_page_sizes"] = r["search_page_sizes"]
        out[f"{name}_search_results_match_filter"] = r["search_results_match_filter"]
        out[f"{name}_rounds"] = r["rounds"]
    # The stub stores nothing: its figures are the client's own ceiling on this machine, and
    # ceiling / MLflow is the best write ratio any server could reach here.
    stub = raw["stub"]
    out["client_ceiling_log_metric_per_s"] = round(stub["log_metric_per_s"], 1)
    out["client_ceiling_log_batch_metrics_per_s"] = round(stub["log_batch_metrics_per_s"], 1)
    out["client_ceiling_create_run_per_s"] = round(stub["create_run_per_s"], 2)
    out["client_ceiling_search_median_ms"] = round(stub["search_median_ms"], 2)
    out["client_ceiling_rounds"] = stub["rounds"]
    out["max_possible_ratio"] = {
        "log_metric": ratio(stub["log_metric_per_s"], mf["log_metric_per_s"]),
        "log_batch": ratio(stub["log_batch_metrics_per_s"], mf["log_batch_metrics_per_s"]),
        "create_run": ratio(stub["create_run_per_s"], mf["create_run_per_s"]),
        # the client parsing a page of 100 runs it got at once, against MLflow's whole search
        "search": ratio(mf["search_median_ms"], stub["search_median_ms"]),
    }
    out["same_search_matches"] = mt["search_matches"] == mf["search_matches"]
    out["fill_s"] = {"mlflow": round(fill_mlflow_s, 2), "mlteam": round(fill_mlteam_s, 2)}
    out["calls"] = {k: sizes[k] for k in sizes}
    out["search_filter"] = SEARCH_FILTER
    out["targets"] = TARGETS
    write = [out["log_metric_ratio"], out["log_batch_ratio"], out["create_run_ratio"]]
    out["targets_met"] = {
        "writes_5x": all(w is not None and w >= TARGETS["write_ratio"] for w in write),
        "search_10x": (out["search_ratio"] or 0) >= TARGETS["search_ratio"],
        "search_under_50ms": out["search_10k_median_ms"] < TARGETS["search_10k_median_ms"],
    }
    out["machine"] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "load_avg_1m_start": round(load_start[0], 2),
        "load_avg_1m_end": round(os.getloadavg()[0], 2),
        "processor": platform.machine(),
    }
    out["versions"] = measured
    out["servers"] = {
        "mlflow": "mlflow server (uvicorn, --workers 2), SQLite backend",
        "mlteam": "mlteam server (uvicorn, 1 process), SQLite",
        "stub": "uvicorn answering every call at once, storing nothing (client ceiling)",
    }
    return out


servers: dict[str, Server] = {}
clients: dict[str, ClientProcess] = {}


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 runs, fewer calls (<1 min)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main()
        return 0

    signal.signal(signal.SIGTERM, _sigterm)
    os.environ.update(QUIET_ENV)  # the in-process MLflow store too
    tmp = Path(tempfile.mkdtemp(prefix="mlteam-bench-"))
    failed = True
    started = time.perf_counter()
    try:
        result = bench(args.quick, tmp)
        failed = False
    except KeyboardInterrupt:
        say("interrupted")
    except Exception as err:  # report, keep the logs, clean up
        traceback.print_exc()
        say(f"failed: {type(err).__name__}: {err}")
    finally:
        for client in clients.values():
            client.kill()
        for server in servers.values():
            server.terminate()
        deadline = time.monotonic() + 3
        for server in servers.values():
            server.finish(deadline)
        if failed:
            logs = (
                Path(tempfile.gettempdir()) / f"mlteam-bench-logs-{time.strftime('%Y%m%d-%H%M%S')}"
            )
            logs.mkdir(exist_ok=True)
            for name in ("mlflow", "mlteam", "stub"):
                server_log = (
                    tmp / name / "server.log" if name != "stub" else tmp / "stub-server.log"
                )
                for log, kept in (
                    (server_log, f"{name}-server.log"),
                    (tmp / f"{name}-client.log", f"{name}-client.log"),
                ):
                    if log.exists():
                        shutil.copy(log, logs / kept)
                if name != "stub" and server_log.exists():
                    say(f"--- {name} server log (last lines) ---")
                    for line in server_log.read_text(errors="replace").splitlines()[-15:]:
                        print(f"  {line}", file=sys.stderr)
            say(f"server and client logs kept in {logs}")
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        return 1
    say(f"done in {time.perf_counter() - started:.0f} s")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
