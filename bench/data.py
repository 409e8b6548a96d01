"""Data ingest benchmark: mlteam ingest vs bare DuckDB vs pandas, one JSON line.

    python bench/data.py            # 1,000,000 rows x 20 columns
    python bench/data.py --quick    # 200,000 rows, under a minute

(a) mlteam: the service layer in-process (`data.service.upload_version`, as the HTTP route calls
    it, minus the HTTP transfer): CSV -> Parquet (DuckDB), SHA-256, profile of every column,
    data checks (not null, unique, range, allowed values: mlteam's check runner, which answers
    them from the version's profile where it proves them, else by a DuckDB query on the
    version), store + metadata row.
(b) the limit: bare DuckDB `COPY (SELECT * FROM read_csv(...)) TO 'x.parquet'`.
(c) what a user would otherwise do: pandas `read_csv` + `to_parquet` + `describe(include='all')`.

The machine is shared and noisy, so each contender runs `--rounds` times (default 3), the three
taking turns in a rotating order; the figures are the medians, and every round is in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def generate_csv(path: Path, rows: int, seed: int = 0) -> Path:
    """rows x 20: 12 numeric (int/float, some nulls) and 8 categorical columns."""
    rng = np.random.default_rng(seed)
    chunk = 250_000
    first = True
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        cols: dict[str, object] = {"id": np.arange(start, start + n)}
        for i in range(6):
            cols[f"x{i}"] = np.round(rng.normal(i, 1 + i, n), 4)
        for i in range(5):
            cols[f"k{i}"] = rng.integers(0, 10 ** (i + 1), n)
        for i in range(8):
            cats = np.array([f"cat{i}_{j}" for j in range(3 + 4 * i)])
            cols[f"c{i}"] = cats[rng.integers(0, len(cats), n)]
        frame = pd.DataFrame(cols)
        frame.loc[rng.random(n) < 0.01, "x0"] = np.nan
        frame.to_csv(path, mode="w" if first else "a", header=first, index=False)
        first = False
    return path


CHECKED_BY: set[str] = set()  # how the checks were answered: "profile", "query"


def time_mlteam(csv: Path, work: Path) -> float:
    """One ingest into a fresh database and store (a second upload of the same content would
    be found by its hash and skip the work)."""
    from mlteam.core.artifacts import ArtifactStore
    from mlteam.core.auth import create_user
    from mlteam.core.db import Database
    from mlteam.core.migrate import upgrade
    from mlteam.data import service
    from mlteam.projects import service as projects

    work.mkdir(parents=True)
    url = f"sqlite:///{work / 'bench.db'}"
    upgrade(url)
    db, store = Database(url), ArtifactStore(str(work / "artifacts"))
    with db.session() as s:
        user, _ = create_user(s, None, "bench@example.com", admin=True)
        projects.create_project(s, user, "bench")
    t0 = time.perf_counter()
    with db.session() as s:
        user = s.merge(user)
        version, _ = service.upload_version(s, user, store, "bench", "data", str(csv), fmt="csv")
        checks = run_checks(store.path(version.key), version.profile)
    elapsed = time.perf_counter() - t0
    CHECKED_BY.update(r["by"] for r in checks)
    assert version.profile and version.row_count > 0
    db.dispose()
    return elapsed


# The checks a pipeline would declare on this output, run by mlteam's own check runner: the
# version's profile proves what it can; any other check is a query on the version.
CHECKS = [
    {"type": "not_null", "columns": ["id"]},
    {"type": "unique", "columns": ["id"]},
    {"type": "range", "column": "k0", "min": 0, "max": 9},
    {"type": "allowed_values", "column": "c0", "values": ["cat0_0", "cat0_1", "cat0_2"]},
]


def run_checks(parquet: str, profile: dict) -> list[dict]:
    import pyarrow.parquet as pq

    from mlteam.data.checks import check_definitions
    from mlteam.data.checks import run_checks as run
    from mlteam.data.sandbox import Sandbox

    results = run(
        check_definitions(CHECKS), lambda: Sandbox({"output": pq.read_table(parquet)}), profile
    )
    assert all(r["passed"] for r in results), results
    return results


def time_duckdb(csv: Path, work: Path) -> float:
    import duckdb

    work.mkdir(parents=True)
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM read_csv('{csv}')) TO '{work / 'x.parquet'}' (FORMAT parquet)"
    )
    con.close()
    return time.perf_counter() - t0


def time_pandas(csv: Path, work: Path) -> float:
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    frame = pd.read_csv(csv)
    frame.to_parquet(work / "p.parquet")
    frame.describe(include="all")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200,000 rows instead of 1,000,000")
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3, help="runs of each contender (median)")
    args = ap.parse_args()
    rows = args.rows or (200_000 if args.quick else 1_000_000)
    contenders = {"mlteam": time_mlteam, "duckdb": time_duckdb, "pandas": time_pandas}
    names = list(contenders)
    load_before = os.getloadavg()
    rounds: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="mlteam-bench-data-") as tmp:
        work = Path(tmp)
        csv = generate_csv(work / "data.csv", rows)
        size_mb = os.path.getsize(csv) / 1e6
        for i in range(args.rounds):
            order = names[i % 3 :] + names[: i % 3]  # each contender goes first once in 3
            times: dict[str, object] = {"order": order}
            for name in order:
                times[f"{name}_s"] = round(contenders[name](csv, work / f"r{i}-{name}"), 3)
            rounds.append(times)
    med = {n: statistics.median(float(r[f"{n}_s"]) for r in rounds) for n in names}  # type: ignore[arg-type]
    print(
        json.dumps(
            {
                "bench": "data_ingest",
                "rows": rows,
                "columns": 20,
                "csv_mb": round(size_mb, 1),
                "mlteam_s": round(med["mlteam"], 3),
                "duckdb_s": round(med["duckdb"], 3),
                "pandas_s": round(med["pandas"], 3),
                "vs_duckdb": round(med["mlteam"] / med["duckdb"], 2),
                "vs_pandas": round(med["mlteam"] / med["pandas"], 2),
                "rounds": rounds,
                "statistic": f"median of {args.rounds} rounds",
                "mode": "in-process service layer",
                "checks_by": sorted(CHECKED_BY),
                "ingest_memory_limit": ingest_memory_limit(),
                "cpus": os.cpu_count(),
                "load_avg_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            }
        )
    )
    sys.stdout.flush()


def ingest_memory_limit() -> str:
    from mlteam.data import ingest

    return ingest.limits()[0]


if __name__ == "__main__":
    main()
