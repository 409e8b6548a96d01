"""Search runs: MLflow's filter language (`tracking.filters`) compiled to SQL, sorted, paged.

A filter compiles to EXISTS subqueries over `params`, `run_tags` and `latest_metrics`, so
SQLite and PostgreSQL give the same answer. LIKE is case-sensitive on both (SQLite's own LIKE
is not, so it becomes GLOB there); `\\` escapes `%` and `_`; ILIKE folds only ASCII case
on SQLite (its lower()), all of Unicode on PostgreSQL. A NaN metric matches only `!=`.
Sorting puts missing values last (after NaN for metrics) in both directions, then
`start_time DESC`, then run id, as MLflow does. Pages are opaque offset tokens.
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, literal, or_, select, true
from sqlalchemy.orm import Session

from mlteam.core.access import Perm, require
from mlteam.core.errors import InvalidInput, NotFound
from mlteam.core.models import User
from mlteam.projects import service as projects
from mlteam.tracking.filters import NULL_OPS, Condition, OrderBy, parse_filter, parse_order_by
from mlteam.tracking.models import Experiment, LatestMetric, Param, Run, Tag

MAX_RESULTS = 50_000
VIEW_TYPES = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": None}

_COLUMNS = {
    "status": Run.status,
    "run_name": Run.name,
    "run_id": Run.id,
    "start_time": Run.start_time,
    "end_time": Run.end_time,
}
_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}

# -- to SQL ------------------------------------------------------------------------------------


def _like_to_glob(pattern: str) -> str:
    """A LIKE pattern as a case-sensitive SQLite GLOB: % → *, _ → ?, `\\x` → literal x."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            i += 1
            ch = pattern[i]
            out.append(f"[{ch}]" if ch in "*?[" else ch)
        elif ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        else:
            out.append(f"[{ch}]" if ch in "*?[" else ch)
        i += 1
    return "".join(out)


def _compare(column: Any, cond: Condition, dialect: str) -> ColumnElement[bool]:
    op, value = cond.op, cond.value
    if op in _CMP:
        return _CMP[op](column, value)
    if op == "LIKE":
        if dialect == "sqlite":  # SQLite's LIKE ignores case; GLOB does not
            return column.op("GLOB", is_comparison=True)(_like_to_glob(value))
        return column.like(value, escape="\\")
    if op == "ILIKE":
        return column.ilike(value, escape="\\")
    if op == "IN":
        return column.in_(value)
    if op == "NOT IN":
        return column.not_in(value)
    return column.is_(None) if op == "IS NULL" else column.is_not(None)


def compile_filter(conditions: list[Condition], dialect: str) -> list[ColumnElement[bool]]:
    """SQL conditions over `Run`, one per filter condition (the caller ANDs them)."""
    out = []
    for cond in conditions:
        if cond.kind == "attr":
            out.append(_compare(_COLUMNS[cond.key], cond, dialect))
            continue
        table = {"metric": LatestMetric, "param": Param, "tag": Tag}[cond.kind].__table__
        match = [table.c.run_id == Run.id, table.c.key == cond.key]
        if cond.op in NULL_OPS:
            found = select(literal(1)).where(*match).exists()
            out.append(~found if cond.op == "IS NULL" else found)
            continue
        test = _compare(table.c.value, cond, dialect)
        if cond.kind == "metric":  # NaN equals nothing and differs from everything
            nan = table.c.is_nan == true()
            test = or_(test, nan) if cond.op == "!=" else and_(test, table.c.is_nan == false())
        out.append(select(literal(1)).where(*match, test).exists())
    return out


def _ordered(query: Any, orders: list[OrderBy], dialect: str) -> Any:
    """The query joined to what it sorts on, sorted MLflow's way (missing values last).

    Text sorts by code point on both backends: PostgreSQL would otherwise use the database's
    locale (en_US puts 'b' before 'C'; SQLite never does)."""
    clauses: list[Any] = []
    for i, order in enumerate(orders):
        if order.kind == "attr":
            column = _COLUMNS[order.key]
            if column is Run.end_time:
                clauses.append(case((column.is_(None), 1), else_=0))
        else:
            model = {"metric": LatestMetric, "param": Param, "tag": Tag}[order.kind]
            joined = model.__table__.alias(f"order_{i}")
            query = query.outerjoin(
                joined, and_(joined.c.run_id == Run.id, joined.c.key == order.key)
            )
            column = joined.c.value
            if order.kind == "metric":
                clauses.append(
                    case((joined.c.run_id.is_(None), 2), (joined.c.is_nan == true(), 1), else_=0)
                )
            else:
                clauses.append(case((joined.c.run_id.is_(None), 1), else_=0))
        if (
            dialect == "postgresql"
            and order.kind in ("param", "tag", "attr")
            and (order.key not in ("start_time", "end_time"))
        ):
            column = column.collate("C")
        clauses.append(column.asc() if order.ascending else column.desc())
    if not any(o.kind == "attr" and o.key == "start_time" for o in orders):
        clauses.append(Run.start_time.desc())
    clauses.append(Run.id.asc())
    return query.order_by(*clauses)


# -- paging ------------------------------------------------------------------------------------


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, binascii.Error, KeyError, TypeError):
        offset = None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInput(
            "invalid page_token: pass next_page_token from the previous page",
            {"field": "page_token"},
        )
    return offset


def _lifecycle(run_view_type: str | int) -> str | None:
    names = {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}
    name = names.get(run_view_type, run_view_type) if isinstance(run_view_type, int) else None
    name = name or str(run_view_type).upper()
    if name not in VIEW_TYPES:
        raise InvalidInput(
            f"run_view_type must be one of {', '.join(VIEW_TYPES)}", {"field": "run_view_type"}
        )
    return VIEW_TYPES[name]


# -- services ----------------------------------------------------------------------------------


def _search(
    session: Session,
    experiment_ids: list[str],
    filter_string: str,
    order_by: list[str] | None,
    max_results: int,
    page_token: str | None,
    run_view_type: str | int,
) -> tuple[list[Run], str | None]:
    if (
        isinstance(max_results, bool)
        or not isinstance(max_results, int)
        or not 1 <= max_results <= MAX_RESULTS
    ):
        raise InvalidInput(
            f"max_results must be 1..{MAX_RESULTS}, not {max_results!r}", {"field": "max_results"}
        )
    if not isinstance(filter_string, str):
        raise InvalidInput("the filter is a string", {"field": "filter"})
    if order_by is not None and not isinstance(order_by, list):
        raise InvalidInput("order_by is a list of strings", {"field": "order_by"})
    conditions = parse_filter(filter_string)
    orders = parse_order_by(order_by)
    offset = _offset(page_token)
    stage = _lifecycle(run_view_type)
    if not experiment_ids:
        return [], None
    dialect = session.get_bind().dialect.name
    query = select(Run).where(
        Run.experiment_id.in_(experiment_ids), *compile_filter(conditions, dialect)
    )
    if stage is not None:
        query = query.where(Run.lifecycle_stage == stage)
    query = _ordered(query, orders, dialect).offset(offset).limit(max_results + 1)
    runs = list(session.scalars(query))
    if len(runs) > max_results:
        return runs[:max_results], _page_token(offset + max_results)
    return runs, None


def search_runs(
    session: Session,
    actor: User,
    experiment_ids: list[str],
    filter_string: str = "",
    order_by: list[str] | None = None,
    max_results: int = 1000,
    page_token: str | None = None,
    run_view_type: str = "ACTIVE_ONLY",
) -> tuple[list[Run], str | None]:
    """Runs of these experiments that match the filter, sorted, one page; and the next
    page's token (None on the last page). Experiments of projects the actor is not in are
    not found (404); see the module docstring for the filter language."""
    if not isinstance(experiment_ids, list):
        raise InvalidInput("experiment_ids is a list", {"field": "experiment_ids"})
    ids = list(dict.fromkeys(str(i) for i in experiment_ids))
    found = {e.id: e for e in session.scalars(select(Experiment).where(Experiment.id.in_(ids)))}
    for exp_id in ids:
        exp = found.get(exp_id)
        if exp is None:
            raise NotFound(f"experiment {exp_id} not found", {"field": "experiment_ids"})
        require(session, actor, exp.project_id, Perm.tracking_read, what="experiment")
    return _search(session, ids, filter_string, order_by, max_results, page_token, run_view_type)


def search_project_runs(
    session: Session,
    actor: User,
    slug: str,
    filter_string: str = "",
    order_by: list[str] | None = None,
    max_results: int = 1000,
    page_token: str | None = None,
    experiments: list[str] | None = None,
    run_view_type: str = "ACTIVE_ONLY",
) -> tuple[list[Run], str | None]:
    """`search_runs` over a project's experiments (all, or those named)."""
    project = projects.resolve(session, actor, slug, Perm.tracking_read)
    query = select(Experiment.id, Experiment.name).where(Experiment.project_id == project.id)
    if experiments:
        query = query.where(Experiment.name.in_(experiments))
    names = dict(session.execute(query).tuples().all())
    if experiments:
        missing = sorted(set(experiments) - set(names.values()))
        if missing:
            raise NotFound(
                f"experiment {missing[0]!r} not found in project {slug}",
                {"field": "experiments", "missing": missing},
            )
    return _search(
        session, sorted(names), filter_string, order_by, max_results, page_token, run_view_type
    )
