"""A profile per column of a Parquet file (or any DuckDB relation), computed at publish.

For each column: type, count, nulls, distinct values, min/max; for numbers mean/std, quartiles
(`quantile_cont` semantics) and a 20-bin equal-width histogram; for everything but floats the
ten most frequent values. Every figure is exact except the distinct count of a column of many
values that are not integers of a moderate range (HyperLogLog; `distinct_approx` says which)
and, in rare cases, quartiles (`quantiles_exact` says which: a number column holding an
infinity or NaN has no bins, and its quartiles past REFINE_MAX values come from a Bernoulli
sample). Values are plain JSON. A float column's NaNs are counted apart (`nans`) and every
other figure describes its numbers, as pandas' `describe` does (DuckDB orders NaN above every
number: a plain max would be NaN). Caveat: in a Parquet file whose writer left NaN out of
the float statistics (Arrow's, as the Parquet format now asks), DuckDB takes them for the
whole truth and folds `isnan` to false, so there NaN goes unseen; the versions mlteam writes
with Arrow keep no float statistics (`service.statistics_columns`), those written before did.

It runs on every publish, so it reads each column once or twice and no more, and profiles
two columns at a time (`_each`), on one DuckDB per process (`_database`):
- count, nulls, min/max: from a Parquet file's footer (min/max by DuckDB, which answers them
  from the footer statistics); for another relation, by one query.
- a number column of finite bounds, up to `in_memory_max` values (half the ingest's memory
  budget), is read once into memory and every figure comes from the array (`_from_array`):
  an integer column of a moderate range is counted value by value (exact distinct count,
  top values, quartiles); another one is cut into FINE equal-width bins, the BINS-bin
  histogram is made of those, and the values of the few bins that hold the quartiles' ranks,
  put in order, give the quartiles exactly; a float's distinct count is HyperLogLog (an
  integer's exact, one flag per possible value, for a range up to BITS).
- a column of few values (dictionary-encoded in every row group of the Parquet file; for another
  relation, an approximate distinct count of at most MAP_MAX; an integer column whose max - min
  is under RANGE_MAX and half its count) gets one GROUP BY value: from that value -> count map
  come its exact distinct count and top values and, for a number, exact mean, std, quartiles
  and histogram.
- a number column too long for memory gets one GROUP BY over the FINE bins between its min and
  max: per bin the count, mean, variance, min and max. Those give the histogram, the mean and
  std (per-bin moments merged by Chan's formula) and the bin that holds each quartile's rank.
  One more read gets the distinct count (as above: exact for integers of a range up to BITS,
  one bit per possible value) and the values in those few bins, which makes the quartiles
  exact (an integer column of many values whose distinct count says it repeats values then
  gets the top-k GROUP BY below); a bin too full to read (> REFINE_MAX values) is binned
  again, at most REFINE_LEVELS deep, after which the quartile is interpolated within its (by
  then tiny) bin and `quantiles_exact` is false.
- another column gets a HyperLogLog distinct count; unless it is (nearly) unique or a float, a
  top-k GROUP BY gives its top values and its exact distinct count.
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from pydantic import ByteSize, TypeAdapter

from mlteam.data.ingest import connect, limits

BINS = 20
FINE = 50 * BINS
MAP_MAX = 50_000
RANGE_MAX = 200_000
REFINE_MAX = 200_000
REFINE_LEVELS = 3
BITS = 1 << 26  # an integer column of a range up to this counts its values exactly (8 MB)
QUARTILES = (0.25, 0.5, 0.75)
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
INTEGERS = NUMERIC[:4] + NUMERIC[5:9]  # not HUGEINT: numpy has no such integers
FLOATS = ("FLOAT", "DOUBLE")
_DICTIONARY = ("PLAIN_DICTIONARY", "RLE_DICTIONARY")
ARRAY_BYTES = 48  # per number profiled in memory, at the peak: the values, their bins, a mask
_BYTES = TypeAdapter(ByteSize)  # "512MB", "1GiB": the setting's syntax, DuckDB's too


def in_memory_max(workers: int, memory_limit: str | None = None) -> int:
    """The most numbers of one column profiled in memory (numpy) by each of `workers`: half
    the ingest's memory budget (MLTEAM_INGEST_MEMORY_LIMIT) shared among them, the other half
    left to DuckDB; a longer column is streamed by DuckDB instead (512MB, 2 workers: 2.6M)."""
    budget = int(_BYTES.validate_python(memory_limit or limits()[0]))
    return budget // 2 // ARRAY_BYTES // workers


# Single rows are read with `fetchall()[0]`, not `fetchone()`: DuckDB (2.x) refuses a relation
# (`con.sql`) on a connection whose last result was not read to its end.


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


def _orderable(typ: str) -> bool:
    return not typ.startswith(("STRUCT", "MAP", "UNION")) and not typ.endswith("]")


def profile_parquet(path: str, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, Any]:
    """The profile of the Parquet file at `path`: `{"row_count", "columns": [...]}`."""
    memory_limit, workers = limits()  # (reading the settings costs ~8 ms: once)
    con = con.cursor() if con is not None else _database(memory_limit, workers)
    # a view of the database, not of this cursor, so that the cursors of `profile_relation`'s
    # workers see it too; named for this call, as other threads may be profiling other files
    view = f"_profile_{uuid.uuid4().hex}"
    try:
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet({s(path)})")
        few, counts = _footer(con, path)
        array_max = in_memory_max(workers, memory_limit)
        return profile_relation(con, view, few, workers, array_max, counts)
    finally:
        con.execute(f"DROP VIEW IF EXISTS {view}")
        con.close()


_DATABASES: dict[tuple[int, str, int], duckdb.DuckDBPyConnection] = {}
_DATABASES_LOCK = threading.Lock()


def _database(memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    """A cursor of this process's DuckDB for profiles, which is opened once: opening one
    costs ~25 ms, a tenth of the profile of 1M x 20, and a server profiles every version it
    publishes. Opened again when the ingest's limits change; one inherited through a fork
    is left alone (its threads did not come along, so closing it could hang)."""
    key = (os.getpid(), memory_limit, threads)
    with _DATABASES_LOCK:  # (cursor() too: a connection is not for two threads at once)
        if key not in _DATABASES:
            for old in [k for k in _DATABASES if k[0] == key[0]]:
                _DATABASES.pop(old).close()
            _DATABASES[key] = connect(*key[1:])
            # a profile runs ~30 queries over one file: its footer is read once
            _DATABASES[key].execute("SET parquet_metadata_cache=true")
        return _DATABASES[key].cursor()


def _footer(
    con: duckdb.DuckDBPyConnection, path: str
) -> tuple[set[str], tuple[int, dict[str, int]] | None]:
    """From the file's footer: the columns likely to hold few values, and (rows, nulls per
    column) where every row group records its null counts.

    Few values: columns whose data pages are dictionary-encoded in every row group (writers
    fall back to plain encoding past a dictionary size). Only a hint: a column that has many
    values after all costs one extra GROUP BY."""
    meta = con.execute(
        "SELECT row_group_id, row_group_num_rows, path_in_schema, stats_null_count, "
        "dictionary_page_offset IS NOT NULL, encoding_stats "
        f"FROM parquet_metadata({s(path)})"
    ).fetchall()
    ok: dict[str, bool] = {}
    nulls: dict[str, int | None] = {}
    groups: dict[int, int] = {}
    for group, group_rows, name, null_count, has_dict, stats in meta:
        groups[group] = group_rows
        data_pages = [e for e in stats or [] if str(e["page_type"]).startswith("DATA_PAGE")]
        dict_only = all(e["encoding"] in _DICTIONARY for e in data_pages)
        ok[name] = ok.get(name, True) and bool(has_dict) and dict_only
        known = nulls.get(name, 0)
        nulls[name] = None if known is None or null_count is None else known + null_count
    few = {name for name, yes in ok.items() if yes}
    if any(n is None for n in nulls.values()):
        return few, None
    return few, (sum(groups.values()), {n: int(c) for n, c in nulls.items() if c is not None})


def profile_relation(
    con: duckdb.DuckDBPyConnection,
    rel: str,
    few: set[str] | None = None,
    workers: int = 1,
    array_max: int | None = None,
    counts: tuple[int, dict[str, int]] | None = None,
) -> dict[str, Any]:
    """The profile of relation `rel`; `few` names the columns likely to hold few values (else
    an approximate distinct count of every column picks them). With `workers` > 1 the columns
    are profiled that many at a time, each worker on a cursor of its own, so `rel` must be
    visible to every connection of the database (a view, not a registered object). A number
    column of up to `array_max` numbers (default: `in_memory_max`) is profiled in memory.
    `counts`, (rows, nulls per column), spares a query when a file's footer has told them."""
    if array_max is None:
        array_max = in_memory_max(workers)
    types = [(r[0], str(r[1])) for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
    if not types:
        return {"row_count": 0, "columns": []}
    if counts is None or any(n not in counts[1] for n, _ in types):
        got = con.execute(
            f"SELECT count(*), {', '.join(f'count({q(n)})' for n, _ in types)} FROM {rel}"
        ).fetchall()[0]
        counts = (
            int(got[0]),
            {n: int(got[0]) - int(c) for (n, _), c in zip(types, got[1:], strict=True)},
        )
    rows, nulls = counts
    bounds = _bounds(con, rel, types)
    cols: list[dict[str, Any]] = []
    for n, t in types:
        non_null = rows - nulls[n]
        col: dict[str, Any] = {
            "name": n,
            "type": t,
            "count": rows,
            "nulls": rows - non_null,
            "null_fraction": (rows - non_null) / rows if rows else 0.0,
            "distinct": 0,
            "distinct_approx": False,
        }
        if is_numeric(t):
            lo, hi = (_num(b) for b in bounds.get(n, (None, None)))
            col.update(min=lo, max=hi, mean=None, std=None, quantiles=_quartiles_dict(None))
            col["quantiles_exact"] = True
            if t in FLOATS:
                col["nans"] = 0
        elif _orderable(t):
            col.update(min=bounds[n][0], max=bounds[n][1])
        col["top_values"] = None
        cols.append(col)
    _bounds_past_nan(con, rel, cols)
    if few is None:
        few = _few_by_estimate(con, rel, cols)
    # number columns first: they take the longest, and one left for last would keep a single
    # worker busy while the other waits
    longest_first = sorted(cols, key=lambda c: not is_numeric(c["type"]))
    first = _each(
        con,
        longest_first,
        lambda cur, c: _by_values_or_bins(cur, rel, c, few, array_max),
        workers,
    )
    hll = [c for c in first if c is not None]  # those left to a HyperLogLog count, in one read
    if hll:
        exprs = ", ".join(f"approx_count_distinct({q(c['name'])})" for c in hll)
        est = con.execute(f"SELECT {exprs} FROM {rel}").fetchall()[0]
        for col, d in zip(hll, est, strict=True):
            col.update(distinct=min(int(d), col["count"] - col["nulls"]), distinct_approx=True)
    no_bins = {id(c) for c in hll if is_numeric(c["type"])}
    _each(con, cols, lambda cur, c: _rest(cur, rel, c, id(c) in no_bins), workers)
    return jsonable({"row_count": rows, "columns": cols})


def _each(
    con: duckdb.DuckDBPyConnection,
    cols: list[dict[str, Any]],
    work: Callable[[duckdb.DuckDBPyConnection, dict[str, Any]], Any],
    workers: int,
) -> list[Any]:
    """`work(connection, col)` for every column, `workers` at a time, in order of results.

    Why threads: each column's queries are small (1M rows are ~9 row groups), and a query
    leaves a core idle in its serial parts (planning, the final merge, the fetch into
    Python), and numpy works on one core; two columns at a time keep both busy (1M x 20:
    0.78 -> 0.57 s, on a slow day; 3 or 4 at a time did no better). DuckDB runs
    each query outside the GIL; a connection serves one thread, so each gets a cursor."""
    if workers <= 1 or len(cols) <= 1:
        return [work(con, c) for c in cols]
    local = threading.local()
    cursors: list[duckdb.DuckDBPyConnection] = []
    guard = threading.Lock()

    def run(col: dict[str, Any]) -> Any:
        cur = getattr(local, "cur", None)
        if cur is None:
            with guard:  # a connection is not for two threads at once, cursor() included
                cur = local.cur = con.cursor()
                cursors.append(cur)
        return work(cur, col)

    try:
        with ThreadPoolExecutor(min(workers, len(cols)), thread_name_prefix="profile") as pool:
            return list(pool.map(run, cols))
    finally:
        for cur in cursors:
            cur.close()


def _by_values_or_bins(
    con: duckdb.DuckDBPyConnection,
    rel: str,
    col: dict[str, Any],
    few: set[str],
    array_max: int,
) -> dict[str, Any] | None:
    """Profile `col` from its values in memory, its value counts or its bins; returns it if
    none applies (it needs a HyperLogLog distinct count)."""
    n, t = col["name"], col["type"]
    non_null = col["count"] - col["nulls"]
    if non_null == 0:
        return None
    bounded = col.get("min") is not None and col.get("max") is not None
    if is_numeric(t) and bounded and non_null <= array_max and (_countable(col) or n not in few):
        _from_array(con, rel, col)
        return None
    # an integer column of a narrow range has at most that many values: count them all
    # (unless there may be about as many values as rows: bins are cheaper than a GROUP BY)
    narrow = (
        t in INTEGERS
        and col["min"] is not None
        and col["max"] - col["min"] < min(RANGE_MAX, non_null / 2)
    )
    limit = RANGE_MAX if narrow else MAP_MAX
    if (
        (narrow or n in few)
        and t not in FLOATS
        and _orderable(t)
        and _from_value_counts(con, rel, col, limit)
    ):
        return None
    if is_numeric(t) and col["min"] is not None and col["max"] is not None:
        _from_bins(con, rel, col)
        return None
    return col


def _rest(con: duckdb.DuckDBPyConnection, rel: str, col: dict[str, Any], no_bins: bool) -> None:
    """What the first pass left: moments of a number column it could not bin (an infinity in
    it) and the top values of a column of many values."""
    if no_bins:
        _moments_fallback(con, rel, col)
    if col["top_values"] is None:  # `_top_k` passes over floats and (nearly) unique ones
        _top_k(con, rel, col)


def _bounds(
    con: duckdb.DuckDBPyConnection, rel: str, types: list[tuple[str, str]]
) -> dict[str, tuple[Any, Any]]:
    """min and max of every orderable column, in a query of min/max alone so that DuckDB can
    answer it from Parquet statistics without reading the data."""
    names = [(n, "DOUBLE" if is_numeric(t) else "VARCHAR") for n, t in types if _orderable(t)]
    if not names:
        return {}
    row = con.execute(
        "SELECT "
        + ", ".join(f"min({q(n)})::{c}, max({q(n)})::{c}" for n, c in names)
        + f" FROM {rel}"
    ).fetchall()[0]
    return {n: (row[2 * i], row[2 * i + 1]) for i, (n, _) in enumerate(names)}


def _not_nan(x: str, typ: str) -> str:
    """The condition that `x` is a number: not NULL and, for a float column, not NaN."""
    return f"{x} IS NOT NULL" + (f" AND NOT isnan({x})" if typ in FLOATS else "")


def _bounds_past_nan(con: duckdb.DuckDBPyConnection, rel: str, cols: list[dict[str, Any]]) -> None:
    """min, max and the NaN count of each float column whose min or max came out NaN: DuckDB
    orders NaN above every number, but a profile describes the numbers (as pandas does) and
    counts the NaNs apart (`nans`). (A Parquet file written by Arrow leaves NaN out of its
    statistics, so there min/max are already the numbers'; `_from_bins` counts its NaNs.)"""
    todo = [c for c in cols if c["type"] in FLOATS and c["count"] > c["nulls"]]
    todo = [c for c in todo if c["min"] is None or c["max"] is None]
    if not todo:
        return
    exprs = []
    for c in todo:
        x = q(c["name"])
        exprs.append(
            f"min({x}) FILTER (WHERE NOT isnan({x}))::DOUBLE, "
            f"max({x}) FILTER (WHERE NOT isnan({x}))::DOUBLE, count(*) FILTER (WHERE isnan({x}))"
        )
    row = con.execute(f"SELECT {', '.join(exprs)} FROM {rel}").fetchall()[0]
    for i, c in enumerate(todo):
        c.update(min=_num(row[3 * i]), max=_num(row[3 * i + 1]), nans=int(row[3 * i + 2]))


def _few_by_estimate(
    con: duckdb.DuckDBPyConnection, rel: str, cols: list[dict[str, Any]]
) -> set[str]:
    names = [
        c["name"]
        for c in cols
        if _orderable(c["type"])
        and c["type"] not in ("FLOAT", "DOUBLE")
        and c["count"] > c["nulls"]
    ]
    if not names:
        return set()
    est = con.execute(
        f"SELECT {', '.join(f'approx_count_distinct({q(n)})' for n in names)} FROM {rel}"
    ).fetchall()[0]
    return {n for n, d in zip(names, est, strict=True) if int(d) <= MAP_MAX}


def _from_value_counts(
    con: duckdb.DuckDBPyConnection, rel: str, col: dict[str, Any], limit: int = MAP_MAX
) -> bool:
    """Profile a column of few values from its value -> count map; False past `limit` values."""
    name = q(col["name"])
    sql = (
        f"SELECT {name} AS v, count(*) AS n FROM {rel} WHERE {name} IS NOT NULL GROUP BY 1 "
        f"LIMIT {limit + 1}"
    )
    non_null = col["count"] - col["nulls"]
    if col["type"] in INTEGERS:  # numpy all the way: a narrow integer column may hold 100k+
        got = con.execute(sql).fetchnumpy()
        values, weights = got["v"], got["n"].astype(np.int64)
        if len(values) > limit:
            return False
        order = np.argsort(values, kind="stable")
        _from_int_counts(col, values[order], weights[order])
        return True
    pairs = con.execute(sql).fetchall()
    if len(pairs) > limit:
        return False
    col.update(distinct=len(pairs), distinct_approx=False)
    if len(pairs) < 0.9 * non_null:
        top = sorted(pairs, key=lambda kv: (-kv[1], str(kv[0])))[:TOP]
        col["top_values"] = [{"value": jsonable(v), "count": int(n)} for v, n in top]
    if is_numeric(col["type"]):
        values = np.array([float(v) for v, _ in pairs])
        weights = np.array([n for _, n in pairs], dtype=np.int64)
        order = np.argsort(values, kind="stable")
        _from_weighted(col, values[order], weights[order])
    return True


def _from_int_counts(col: dict[str, Any], values: np.ndarray, weights: np.ndarray) -> None:
    """Every figure of an integer column from its sorted distinct `values` and their counts."""
    col.update(distinct=len(values), distinct_approx=False)
    if len(values) < 0.9 * (col["count"] - col["nulls"]):  # else every value would be "top"
        top = np.argsort(-weights, kind="stable")[:TOP]  # ties: the smaller value first
        col["top_values"] = [{"value": int(values[i]), "count": int(weights[i])} for i in top]
    _from_weighted(col, values.astype(float), weights)


def _countable(col: dict[str, Any]) -> bool:
    """Whether an integer column's values are counted in memory, one counter per possible
    value (`np.bincount`): when there are at most about twice as many as it has numbers."""
    lo, hi = col["min"], col["max"]
    span = max(RANGE_MAX, 2 * (col["count"] - col["nulls"]))
    return col["type"] in INTEGERS and -(2.0**62) < lo <= hi < 2.0**62 and hi - lo < span


def _from_array(con: duckdb.DuckDBPyConnection, rel: str, col: dict[str, Any]) -> None:
    """Every figure of a number column from its values, read into memory once (numpy).

    Why: DuckDB's GROUP BY over fine bins and its second read cost ~0.12 CPU-s per column
    of 1M floats; read once (~0.025) the same figures cost ~0.025 more in numpy (1M x 20:
    the whole profile 1.3 CPU-s -> 0.9, and -> 0.7 with the footer's counts and one DuckDB). An integer column of a moderate range is counted
    value by value (exact distinct count, top values, quartiles), unless nearly every value
    is new; another number column is binned like `_from_bins`, and the values of the bins
    that hold the quartiles, put in order, give those exactly."""
    x = q(col["name"])
    counted = _countable(col)
    expr = x if counted else f"{x}::DOUBLE"
    v = pa.table(con.sql(f"SELECT {expr} FROM {rel} WHERE {x} IS NOT NULL")).column(0).to_numpy()
    if counted:
        v = v.astype(np.int64, copy=False)
        lo = int(v.min())
        counts = np.bincount(v - lo)
        present = np.flatnonzero(counts)
        if len(present) < 0.9 * len(v):  # values repeat: their counts give every figure
            _from_int_counts(col, present + lo, counts[present])
            return
        # (nearly) unique: no top values, and bins are cheaper than a weight per value
        col.update(distinct=len(present), distinct_approx=False)
        v = v.astype(np.float64)
    if col["type"] in FLOATS:
        nan = np.isnan(v)
        col["nans"] = int(nan.sum())
        if col["nans"]:
            v = v[~nan]
    n = len(v)
    if n == 0:
        return
    lo, hi = float(v.min()), float(v.max())
    if hi == lo:
        col.update(distinct=1, mean=lo, std=0.0 if n > 1 else None)
        col.update(quantiles=_quartiles_dict([lo, lo, lo]), histogram=_histogram(lo, hi, [n]))
        return
    fine = v - lo  # the fine bin of each value, as `_bin_sql` computes it
    fine /= (hi - lo) / FINE
    np.floor(fine, out=fine)
    bins = np.minimum(fine.astype(np.intp), FINE - 1)
    del fine
    counts = np.bincount(bins, minlength=FINE)
    col.update(
        mean=float(v.mean()),
        std=float(v.std(ddof=1)) if n > 1 else None,
        histogram=_histogram(lo, hi, [int(c) for c in counts.reshape(BINS, -1).sum(axis=1)]),
    )
    # the quartiles' ranks fall in a few bins; a bin's values all lie below the next bin's,
    # so those bins' values, put in order, hold each rank at a known place
    ranks = sorted({r for p in QUARTILES for r in _ranks(n, p)})
    starts = np.cumsum(counts) - counts
    holding = np.searchsorted(starts + counts, ranks, side="right")  # the bin of each rank
    wanted = np.zeros(FINE, dtype=bool)
    wanted[holding] = True
    before = np.cumsum(counts * wanted) - counts * wanted  # of wanted bins' values, below
    chosen = v[wanted[bins]]
    place = {r: int(r - starts[b] + before[b]) for r, b in zip(ranks, holding, strict=True)}
    chosen.partition(sorted(set(place.values())))
    values = {r: float(chosen[i]) for r, i in place.items()}
    col["quantiles"] = _quartiles_dict([_interpolate(values.__getitem__, n, p) for p in QUARTILES])
    if not counted:
        col.update(_distinct_of(con, col, v, lo, hi))


def _distinct_of(
    con: duckdb.DuckDBPyConnection, col: dict[str, Any], v: np.ndarray, lo: float, hi: float
) -> dict[str, Any]:
    """The distinct count of numbers `v`: of integers of a range up to BITS exact (a flag per
    possible value), else HyperLogLog (DuckDB's, over the array in place)."""
    if col["type"] in INTEGERS and max(abs(lo), abs(hi)) < 2**53 and hi - lo < BITS:
        seen = np.zeros(int(hi - lo) + 1, dtype=bool)
        seen[(v - lo).astype(np.int64)] = True
        return {"distinct": int(np.count_nonzero(seen)), "distinct_approx": False}
    con.register("_mlteam_numbers", pa.table({"v": v}))
    try:
        (row,) = con.execute("SELECT approx_count_distinct(v) FROM _mlteam_numbers").fetchall()
    finally:
        con.unregister("_mlteam_numbers")
    return {"distinct": min(len(v), int(row[0])), "distinct_approx": True}


def _from_weighted(col: dict[str, Any], values: np.ndarray, weights: np.ndarray) -> None:
    """Mean, std, quartiles and histogram of sorted distinct `values` seen `weights` times."""
    total = int(weights.sum())
    w = weights.astype(np.float64)
    mean = float(np.dot(values, w) / total)
    dev = values - mean
    dev *= dev
    m2 = float(np.dot(dev, w))
    cum = np.cumsum(weights)

    def at(rank: int) -> float:
        return float(values[int(np.searchsorted(cum, rank, side="right"))])

    col.update(mean=mean, std=math.sqrt(m2 / (total - 1)) if total > 1 else None)
    col["quantiles"] = _quartiles_dict([_interpolate(at, total, p) for p in QUARTILES])
    lo, hi = float(values[0]), float(values[-1])
    if hi > lo:
        idx = np.minimum(BINS - 1, np.floor((values - lo) / ((hi - lo) / BINS))).astype(np.int64)
        counts = np.bincount(idx, weights=weights, minlength=BINS).astype(np.int64)
    else:
        counts = np.array([total])
    col["histogram"] = _histogram(lo, hi, [int(c) for c in counts])


def _interpolate(at: Any, n: int, p: float) -> float:
    """`quantile_cont`: the values of ranks floor(h) and floor(h)+1, h = (n-1)p, interpolated."""
    h = (n - 1) * p
    r = math.floor(h)
    lo = at(r)
    return lo if h == r else lo + (h - r) * (at(r + 1) - lo)


def _quartiles_dict(qs: list[float] | None) -> dict[str, float | None]:
    qs = qs or [None, None, None]  # type: ignore[list-item]
    return {"q25": _num(qs[0]), "q50": _num(qs[1]), "q75": _num(qs[2])}


def _histogram(lo: float, hi: float, counts: list[int]) -> dict[str, list[Any]]:
    nbins = len(counts)
    width = (hi - lo) / nbins if hi > lo else 1.0
    return {
        "edges": [lo + width * i for i in range(nbins)] + [hi if hi > lo else lo + 1.0],
        "counts": counts,
    }


def _bin_sql(expr: str, lo: float, width: float) -> str:
    """The fine bin (0..FINE-1) of `expr` in [lo, lo + FINE*width]; the maximum in the last."""
    return f"least({FINE - 1}, floor(({expr} - {lo!r}) / {width!r}))::INT"


def _from_bins(con: duckdb.DuckDBPyConnection, rel: str, col: dict[str, Any]) -> None:
    """Histogram, mean, std, distinct and exact quartiles of a numeric column of many values:
    one GROUP BY over the fine bins, then one read for the distinct count and the values of
    the bins that hold the quartiles."""
    x = f"{q(col['name'])}::DOUBLE"
    lo, hi = col["min"], col["max"]
    non_null = col["count"] - col["nulls"]
    if hi == lo:  # one value
        if col["type"] in FLOATS:
            sql = f"SELECT count(*) FILTER (WHERE isnan({x})) FROM {rel}"
            col["nans"] = int(con.execute(sql).fetchall()[0][0])
        numbers = non_null - col.get("nans", 0)
        col.update(distinct=1, mean=lo, std=0.0 if numbers > 1 else None)
        col.update(quantiles=_quartiles_dict([lo, lo, lo]), histogram=_histogram(lo, hi, [numbers]))
        return
    bins = _bin_stats(con, rel, x, _not_nan(x, col["type"]), lo, (hi - lo) / FINE)
    # a NaN the filter let through (a file whose statistics leave NaN out: see above) would
    # make its bin's figures NaN; that bin is left out, counted with the NaNs
    bins = [b for b in bins if not any(isinstance(v, float) and math.isnan(v) for v in b[2:])]
    n = np.array([b[1] for b in bins], dtype=np.int64)
    distinct_of = non_null  # NaN is one more value to a distinct count
    non_null = int(n.sum())  # the numbers: NaN is neither binned nor ranked
    if col["type"] in FLOATS:
        col["nans"] = col["count"] - col["nulls"] - non_null
    if non_null == 0:
        return
    avg = np.array([b[2] for b in bins])
    var = np.array([b[3] for b in bins])
    mean = float((n * avg).sum() / n.sum())
    m2 = float((n * var).sum() + (n * (avg - mean) ** 2).sum())  # Chan et al.
    counts = [0] * BINS
    for b in bins:
        counts[b[0] * BINS // FINE] += int(b[1])
    col.update(
        mean=mean,
        std=math.sqrt(m2 / (non_null - 1)) if non_null > 1 else None,
        histogram=_histogram(lo, hi, counts),
    )
    ranks = {r for p in QUARTILES for r in _ranks(non_null, p)}
    values, to_read, exact = _locate(con, rel, x, bins, ranks, 0, REFINE_LEVELS)
    # the distinct count in the same read: of integers exact, a bit per possible value (1M
    # values: 0.017 s, against 0.077 for count(DISTINCT)); else HyperLogLog (an ungrouped
    # one costs a third of one per bin)
    approx = not (col["type"] in INTEGERS and max(abs(lo), abs(hi)) < 2**53 and hi - lo < BITS)
    distinct_sql = (
        f"approx_count_distinct({q(col['name'])})"
        if approx
        else f"bit_count(bitstring_agg({q(col['name'])}, {int(lo)}, {int(hi)}))"
    )
    ranges = " OR ".join(f"{x} BETWEEN {a!r} AND {b!r}" for a, b, _, _ in to_read) or "false"
    distinct, got = con.execute(
        f"SELECT {distinct_sql}, list({x}) FILTER (WHERE {ranges}) FROM {rel}"
    ).fetchall()[0]
    got = np.array(got or [], dtype=float)
    for a, b, first, inside in to_read:
        chosen = np.sort(got[(got >= a) & (got <= b)])
        values.update({r: float(chosen[r - first]) for r in inside})
    col.update(distinct=min(distinct_of, int(distinct)), distinct_approx=approx)
    col["quantiles_exact"] = exact
    col["quantiles"] = _quartiles_dict(
        [_interpolate(values.__getitem__, non_null, p) for p in QUARTILES]
    )


def _bin_stats(
    con: duckdb.DuckDBPyConnection, rel: str, x: str, where: str, lo: float, width: float
) -> list[tuple[Any, ...]]:
    """(bin, count, mean, population variance, min, max) of each non-empty fine bin of `x`
    over the rows matching `where`, in bin order."""
    return con.execute(
        f"SELECT {_bin_sql(x, lo, width)}, count(*), avg({x}), var_pop({x}), min({x}), "
        f"max({x}) FROM {rel} WHERE {where} GROUP BY 1 ORDER BY 1"  # no alias: it could be a column
    ).fetchall()


def _ranks(n: int, p: float) -> list[int]:
    h = (n - 1) * p
    r = math.floor(h)
    return [r] if h == r else [r, r + 1]


def _locate(
    con: duckdb.DuckDBPyConnection,
    rel: str,
    x: str,
    bins: list[tuple[Any, ...]],
    ranks: set[int],
    offset: int,
    levels: int,
) -> tuple[dict[int, float], list[tuple[float, float, int, list[int]]], bool]:
    """Where the values of the given ranks (0-based, in order, among the values the `bins`
    counted, numbered from `offset`) are: known at once in a bin of one value, else in a bin
    of few values to be read; a bin too full to read is binned again (a GROUP BY restricted
    to it), at most `levels` deep, past which the value is interpolated within its bin.

    Returns (rank -> value known, [(min, max, first rank, ranks) of each bin to read], exact).
    A bin's values are exactly those between its min and max (the bin of a value only grows
    with the value), so a range filter selects them."""
    known: dict[int, float] = {}
    to_read: list[tuple[float, float, int, list[int]]] = []
    exact = True
    start = offset
    for _b, count, _avg, _var, bmin, bmax in bins:
        count, bmin, bmax = int(count), float(bmin), float(bmax)
        inside = [r for r in ranks if start <= r < start + count]
        if not inside:
            pass
        elif bmin == bmax:
            known.update({r: bmin for r in inside})
        elif count <= REFINE_MAX:
            to_read.append((bmin, bmax, start, inside))
        elif levels > 1:
            where = f"{x} BETWEEN {bmin!r} AND {bmax!r}"
            sub_bins = _bin_stats(con, rel, x, where, bmin, (bmax - bmin) / FINE)
            k, more, ok = _locate(con, rel, x, sub_bins, set(inside), start, levels - 1)
            known.update(k)
            to_read += more
            exact = exact and ok
        else:  # out of levels: interpolate within a bin of width (max-min)/FINE^levels
            exact = False
            known.update({r: bmin + (bmax - bmin) * (r - start + 0.5) / count for r in inside})
        start += count
    return known, to_read, exact


def _moments_fallback(con: duckdb.DuckDBPyConnection, rel: str, col: dict[str, Any]) -> None:
    """Mean, std and quartiles of a numeric column whose min or max is not finite (no bins):
    quartiles of at most about REFINE_MAX values (a Bernoulli sample past that)."""
    x = f"{q(col['name'])}::DOUBLE"
    where = _not_nan(x, col["type"])
    moments = f"SELECT avg({x}), stddev_samp({x}) FROM {rel} WHERE {where}"
    row = con.execute(moments).fetchall()[0]
    src, non_null = rel, col["count"] - col["nulls"] - col.get("nans", 0)
    if non_null > REFINE_MAX:
        pct = max(0.1, 100.0 * REFINE_MAX / non_null)
        src = f"(SELECT * FROM {rel} USING SAMPLE {pct:.3f}% (bernoulli, 42))"
        col["quantiles_exact"] = False
    qs = con.execute(
        f"SELECT quantile_cont({x}, [{', '.join(map(str, QUARTILES))}]) FROM {src} WHERE {where}"
    ).fetchall()[0]
    col.update(
        mean=_num(row[0]), std=_num(row[1]), quantiles=_quartiles_dict(qs[0] if qs else None)
    )


def _top_k(con: duckdb.DuckDBPyConnection, rel: str, col: dict[str, Any]) -> None:
    """The TOP most frequent values of a column of many values (not floats, not ~unique);
    the GROUP BY that finds them also makes the distinct count exact."""
    non_null = col["count"] - col["nulls"]
    typ = col["type"]
    if typ in ("FLOAT", "DOUBLE") or not _orderable(typ) or col["distinct"] >= 0.9 * non_null:
        return
    name = q(col["name"])
    rows = con.execute(
        f"SELECT v, n, count(*) OVER () FROM (SELECT {name} AS v, count(*) AS n FROM {rel} "
        f"WHERE {name} IS NOT NULL GROUP BY 1) ORDER BY n DESC, v LIMIT {TOP}"
    ).fetchall()
    col["top_values"] = [{"value": jsonable(v), "count": int(n)} for v, n, _ in rows]
    if rows:
        col.update(distinct=int(rows[0][2]), distinct_approx=False)
