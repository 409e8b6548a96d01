"""A profile per column of a Parquet file, computed by DuckDB at publish.

For each column: type, count, nulls, distinct values, and for numbers min/max/mean/
std/quartiles and a 20-bin histogram; for everything but floats the ten most frequent values.
One parallel pass gives counts, nulls, min/max, mean/std and an approximate distinct count
(HyperLogLog); quartiles are exact up to 200,000 rows, else those of a ~200,000-row (Bernoulli)
sample; two more passes give the histograms and the top values (whose map also makes the
distinct count exact for columns of up to 50,000 values: `distinct_approx` says which).
Values are plain JSON (no NaN/inf).
"""

from __future__ import annotations

import math
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import duckdb

from mlteam.data.ingest import connect

BINS = 20
EXACT_QUANTILE_ROWS = 200_000
TOP = 10
NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
)


def q(name: str) -> str:
    """A SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def s(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def is_numeric(typ: str) -> bool:
    return typ in NUMERIC or typ.startswith("DECIMAL")


def jsonable(v: Any) -> Any:
    """Plain JSON: no NaN/inf (PostgreSQL's JSON refuses them), dates as ISO text."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Decimal):
        return jsonable(float(v))
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if v is None or isinstance(v, bool | int | str):
        return v
    return str(v)


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def profile_parquet(path: str, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, Any]:
    """The profile of the Parquet file at `path`: `{"row_count", "columns": [...]}`."""
    own = con is None
    con = con or connect()
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW _p AS SELECT * FROM read_parquet({s(path)})")
        return profile_relation(con, "_p")
    finally:
        if own:
            con.close()


def profile_relation(con: duckdb.DuckDBPyConnection, rel: str) -> dict[str, Any]:
    types = [(r[0], str(r[1])) for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
    if not types:
        return {"row_count": 0, "columns": []}
    parts = ["count(*)"]
    for n, t in types:
        parts += [f"count({q(n)})", f"approx_count_distinct({q(n)})"]
        if is_numeric(t):
            parts += [
                f"min({q(n)})::DOUBLE",
                f"max({q(n)})::DOUBLE",
                f"avg({q(n)})",
                f"stddev_samp({q(n)})",
            ]
        elif _orderable(t):
            parts += [f"min({q(n)})::VARCHAR", f"max({q(n)})::VARCHAR"]
    row = list(con.execute(f"SELECT {', '.join(parts)} FROM {rel}").fetchone() or ())
    rows = int(row.pop(0))
    quartiles = _quartiles(con, rel, [n for n, t in types if is_numeric(t)], rows)
    cols: list[dict[str, Any]] = []
    hist: list[str] = []
    for n, t in types:
        non_null, distinct = int(row.pop(0)), int(row.pop(0))
        col: dict[str, Any] = {
            "name": n,
            "type": t,
            "count": rows,
            "nulls": rows - non_null,
            "null_fraction": (rows - non_null) / rows if rows else 0.0,
            "distinct": min(distinct, non_null),
            "distinct_approx": True,
        }
        if is_numeric(t):
            lo, hi, avg, std = (row.pop(0) for _ in range(4))
            qs = quartiles.get(n) or [None, None, None]
            col.update(
                min=_num(lo),
                max=_num(hi),
                mean=_num(avg),
                std=_num(std),
                quantiles={"q25": _num(qs[0]), "q50": _num(qs[1]), "q75": _num(qs[2])},
            )
            if col["min"] is not None and col["max"] is not None:
                hist.append(n)
        elif _orderable(t):
            col.update(min=row.pop(0), max=row.pop(0))
        cols.append(col)
    _histograms_and_top_values(con, rel, cols, hist)
    return jsonable({"row_count": rows, "columns": cols})


def _quartiles(
    con: duckdb.DuckDBPyConnection, rel: str, names: list[str], rows: int
) -> dict[str, list[Any]]:
    """Exact quartiles up to EXACT_QUANTILE_ROWS rows; beyond, those of a block sample of
    about that many rows (exact quantiles of millions of rows cost more than the ingest)."""
    if not names or not rows:
        return {}
    src = rel
    if rows > EXACT_QUANTILE_ROWS:
        pct = max(0.1, 100.0 * EXACT_QUANTILE_ROWS / rows)
        src = f"(SELECT * FROM {rel} USING SAMPLE {pct:.3f}% (bernoulli, 42))"
    exprs = ", ".join(f"quantile_cont({q(n)}, [0.25, 0.5, 0.75])" for n in names)
    row = con.execute(f"SELECT {exprs} FROM {src}").fetchone() or ()
    return dict(zip(names, row, strict=True))


def _orderable(typ: str) -> bool:
    return not typ.startswith(("STRUCT", "MAP", "UNION")) and not typ.endswith("]")


def _histograms_and_top_values(
    con: duckdb.DuckDBPyConnection, rel: str, cols: list[dict[str, Any]], numeric: list[str]
) -> None:
    """Equal-width histograms of numeric columns, and a value → count map of every column of
    few values (but floats); a column of many values gets its own top-k query."""
    by_name = {c["name"]: c for c in cols}
    exprs: list[str] = []
    for n in numeric:
        lo, hi = by_name[n]["min"], by_name[n]["max"]
        width = (hi - lo) / BINS if hi > lo else 1.0
        # bin index 0..BINS-1; the maximum falls in the last bin
        exprs.append(
            f"histogram(least({BINS - 1}, floor(({q(n)}::DOUBLE - {lo!r}) / {width!r}))::INT) "
            f"FILTER (WHERE {q(n)} IS NOT NULL)"  # least() would turn a NULL into the last bin
        )
    small, large = [], []
    for i, c in enumerate(cols):
        c["top_values"] = None
        non_null = c["count"] - c["nulls"]
        if c["type"] in ("FLOAT", "DOUBLE") or not _orderable(c["type"]) or non_null == 0:
            continue
        if c["distinct"] >= 0.9 * non_null:  # (nearly) unique: every value is a "top" value
            continue
        (small if c["distinct"] <= 50_000 else large).append(i)
    maps = [f"histogram({q(cols[i]['name'])})" for i in small]
    # Two queries, not one: together their aggregate states outgrow a small memory limit.
    row: list[Any] = []
    for part in (exprs, maps):
        if part:
            row += list(con.execute(f"SELECT {', '.join(part)} FROM {rel}").fetchone() or ())
    for n in numeric:
        hist = row.pop(0)
        lo, hi = by_name[n]["min"], by_name[n]["max"]
        width = (hi - lo) / BINS if hi > lo else 1.0
        nbins = BINS if hi > lo else 1
        counts = [0] * nbins
        for k, v in (hist or {}).items():
            if k is not None:
                counts[min(int(k), nbins - 1)] += int(v)
        by_name[n]["histogram"] = {
            "edges": [lo + width * i for i in range(nbins)] + [hi if hi > lo else lo + 1.0],
            "counts": counts,
        }
    for i in small:
        m = {jsonable(k): int(v) for k, v in (row.pop(0) or {}).items()}
        top = sorted(m.items(), key=lambda kv: (-kv[1], str(kv[0])))[:TOP]
        cols[i]["top_values"] = [{"value": v, "count": n} for v, n in top]
        cols[i].update(distinct=len(m), distinct_approx=False)  # exact from the map
    for i in large:
        name = q(cols[i]["name"])
        top_rows = con.execute(
            f"SELECT {name}, count(*) FROM {rel} WHERE {name} IS NOT NULL "
            f"GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP}"
        ).fetchall()
        cols[i]["top_values"] = [{"value": jsonable(v), "count": int(n)} for v, n in top_rows]
