"""Deterministic train/validation/test splits, fixed on a dataset version.

By hash: a row's part is decided by its key alone, `md5(key as text)` → the first 8 hex digits
as an integer → mod 10,000 buckets → parts by their fractions. MD5 is the same on every machine
and every DuckDB version (unlike DuckDB's `hash()`), and a row keeps its part across versions:
the same key is in `test` in version 3 and version 7. By time: rows before the `validation`
cutoff are `train`, before the `test` cutoff `validation`, the rest `test`.

The split is recorded on the version (method, column, fractions or cutoffs, counts) so every
later consumer reads the same rows; once set it does not change.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import Perm
from mlteam.core.artifacts import ArtifactStore
from mlteam.core.errors import Conflict, InvalidInput
from mlteam.core.models import User
from mlteam.data import service
from mlteam.data.models import DatasetVersion
from mlteam.data.profile import q, s
from mlteam.data.scan import connect_version
from mlteam.projects import service as projects

PARTS = ("train", "validation", "test")
BUCKETS = 10_000
METHODS = ("hash", "time")


def bucket_sql(column: str) -> str:
    """The stable bucket 0..BUCKETS-1 of a row, from its key column."""
    return f"(('0x' || substr(md5(CAST({q(column)} AS VARCHAR)), 1, 8))::UBIGINT % {BUCKETS})"


def part_sql(split: dict[str, Any]) -> str:
    """A SQL expression giving each row's part ('train', 'validation' or 'test')."""
    col = split["column"]
    if split["method"] == "hash":
        f = split["fractions"]
        train = round(f.get("train", 0) * BUCKETS)
        val = train + round(f.get("validation", 0) * BUCKETS)
        b = bucket_sql(col)
        return (
            f"CASE WHEN {b} < {train} THEN 'train' WHEN {b} < {val} THEN 'validation' "
            "ELSE 'test' END"
        )
    typ = split["column_type"]
    c = split["cutoffs"]
    cases = []
    if c.get("validation") is not None:
        cases.append(f"WHEN {q(col)} < CAST({s(str(c['validation']))} AS {typ}) THEN 'train'")
    if c.get("test") is not None:
        prev = "'validation'" if c.get("validation") is not None else "'train'"
        cases.append(f"WHEN {q(col)} < CAST({s(str(c['test']))} AS {typ}) THEN {prev}")
    last = "'test'" if c.get("test") is not None else "'validation'"
    return f"CASE {' '.join(cases)} ELSE {last} END"


def _fractions(fractions: dict[str, float] | None) -> dict[str, float]:
    f = dict(fractions or {"train": 0.8, "validation": 0.1, "test": 0.1})
    bad = sorted(set(f) - set(PARTS))
    if bad:
        raise InvalidInput(
            f"fractions has unknown parts {bad}: use train, validation, test",
            {"field": "fractions"},
        )
    for k, v in f.items():
        if not isinstance(v, int | float) or not 0 <= v <= 1 or math.isnan(v):
            raise InvalidInput(
                f"fractions.{k} must be a number between 0 and 1", {"field": f"fractions.{k}"}
            )
    if abs(sum(f.values()) - 1) > 1e-6:
        raise InvalidInput(
            f"fractions must add up to 1 (they add up to {sum(f.values()):g})",
            {"field": "fractions"},
        )
    return {p: float(f.get(p, 0.0)) for p in PARTS}


def set_split(
    session: Session,
    actor: User,
    store: ArtifactStore,
    slug: str,
    dataset: str,
    n: int | str,
    *,
    method: str,
    column: str,
    fractions: dict[str, float] | None = None,
    cutoffs: dict[str, Any] | None = None,
) -> DatasetVersion:
    """Fix the split of a version (idempotent for the same definition; a different one is a
    conflict: consumers may already have trained on the first)."""
    project = projects.resolve(session, actor, slug, Perm.data_write)
    version = service.get_version(session, actor, slug, dataset, n)
    if method not in METHODS:
        raise InvalidInput("method must be 'hash' or 'time'", {"field": "method"})
    types = {c["name"]: c for c in version.schema}
    with connect_version(store, version) as con:
        ctypes = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE v)").fetchall())
        if column not in ctypes:
            raise InvalidInput(
                f"column {column!r} is not in {dataset} v{version.n} (columns: {', '.join(types)})",
                {"field": "column", "column": column},
            )
        nulls = con.execute(f"SELECT count(*) - count({q(column)}) FROM v").fetchone()[0]
        if nulls:
            raise InvalidInput(
                f"column {column!r} has {nulls} empty values; a split needs it on every row",
                {"field": "column", "column": column, "nulls": int(nulls)},
            )
        split: dict[str, Any] = {"method": method, "column": column}
        if method == "hash":
            if cutoffs:
                raise InvalidInput("cutoffs apply to method=time", {"field": "cutoffs"})
            split.update(fractions=_fractions(fractions), hash="md5", buckets=BUCKETS)
        else:
            split.update(cutoffs=_cutoffs(con, column, ctypes[column], cutoffs))
            split["column_type"] = ctypes[column]
        counts = dict(
            con.execute(f"SELECT {part_sql(split)} AS p, count(*) FROM v GROUP BY p").fetchall()
        )
    split["counts"] = {p: int(counts.get(p, 0)) for p in PARTS}
    if version.split is not None:
        if _definition(version.split) == _definition(split):
            return version
        raise Conflict(
            f"{dataset} v{version.n} already has a split ({version.split['method']} on "
            f"{version.split['column']!r}); a split is fixed once set so every consumer sees "
            "the same rows. Publish a new version to split differently.",
            {"split": version.split},
        )
    version.split = split
    audit.record(
        session,
        actor,
        "dataset.version.split",
        f"dataset:{dataset}@{version.n}",
        project_id=project.id,
        detail={k: v for k, v in split.items() if k != "column_type"},
    )
    session.flush()
    return version


def _definition(split: dict[str, Any]) -> tuple[Any, ...]:
    return (split["method"], split["column"], split.get("fractions"), split.get("cutoffs"))


def _cutoffs(
    con: duckdb.DuckDBPyConnection, column: str, typ: str, cutoffs: dict[str, Any] | None
) -> dict[str, Any]:
    if not cutoffs or not set(cutoffs) & {"validation", "test"}:
        raise InvalidInput(
            "method=time needs cutoffs: {'validation': <start>, 'test': <start>}",
            {"field": "cutoffs"},
        )
    bad = sorted(set(cutoffs) - {"validation", "test"})
    if bad:
        raise InvalidInput(f"unknown cutoffs {bad}: use validation, test", {"field": "cutoffs"})
    out: dict[str, Any] = {}
    for part in ("validation", "test"):
        if cutoffs.get(part) is None:
            continue
        try:
            con.execute(f"SELECT CAST({s(str(cutoffs[part]))} AS {typ})").fetchone()
        except duckdb.Error as err:
            raise InvalidInput(
                f"cutoffs.{part} {cutoffs[part]!r} is not a value of column {column!r} ({typ})",
                {"field": f"cutoffs.{part}"},
            ) from err
        out[part] = str(cutoffs[part])
    if "validation" in out and "test" in out:
        ordered = con.execute(
            f"SELECT CAST({s(out['validation'])} AS {typ}) <= CAST({s(out['test'])} AS {typ})"
        ).fetchone()[0]
        if not ordered:
            raise InvalidInput(
                "cutoffs.validation must not come after cutoffs.test", {"field": "cutoffs"}
            )
    return out
