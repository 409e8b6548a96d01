"""Gates: QA's named rule sets a model version must pass, and the check of a report against them.

Rule types (each a JSON object with "type"; an optional "name" labels the gate):

    metric                   {"metric": "roc_auc", "min": 0.9}  and/or  "max": ...
    fairness                 {"measure": "demographic_parity_difference", "max": 0.1}
    robustness               {"max_drop": 0.05, "perturbation": "max"|"noise"|"missing"}
    beats_baseline           {"metric": "accuracy", "margin": 0.02}
    not_worse_than_champion  {"metric": "accuracy", "tolerance": 0.0}
    no_leakage               {"max_shared_fraction": 0.0}  (and no single-feature suspect)
    invariance               {}  every declared invariance test held

What a rule does when its input is not in the report (decided here, documented once):
- not_worse_than_champion with no champion ⇒ passes, message "no champion" (the first model
  of a project has nothing to be worse than);
- anything else whose input is missing (no sensitive column was evaluated, a metric the task
  does not have or that is undefined on these rows, no baseline, no invariance tests)
  ⇒ fails "not evaluated": a gate QA asked for cannot pass by being skipped.

Gate sets are stored per project and versioned (models.GateSet): create is version 1, every
update the next version, a delete a tombstone version; each change is audited.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import Perm
from mlteam.core.errors import Conflict, InvalidInput, NotFound
from mlteam.core.models import User
from mlteam.evaluation.metrics import HIGHER_IS_BETTER
from mlteam.evaluation.models import GateSet, InvarianceTest
from mlteam.projects import service as projects

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
METRICS = tuple(HIGHER_IS_BETTER)
FAIRNESS_MEASURES = ("demographic_parity_difference", "equalized_odds_difference")
PERTURBATIONS = ("max", "noise", "missing")
MAX_RULES = 100

# type → (required fields, optional fields)
RULES: dict[str, tuple[set[str], set[str]]] = {
    "metric": ({"metric"}, {"min", "max"}),
    "fairness": ({"measure", "max"}, set()),
    "robustness": ({"max_drop"}, {"perturbation"}),
    "beats_baseline": ({"metric"}, {"margin"}),
    "not_worse_than_champion": ({"metric"}, {"tolerance"}),
    "no_leakage": (set(), {"max_shared_fraction"}),
    "invariance": (set(), set()),
}


# -- rules --------------------------------------------------------------------------------------


def _bad(i: int, field: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"rules[{i}].{field}: {message}", {"field": f"rules[{i}].{field}", "rule": i}
    )


def _num(rule: dict[str, Any], i: int, field: str, *, nonneg: bool = False) -> float:
    v = rule[field]
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise _bad(i, field, "must be a finite number")
    if nonneg and v < 0:
        raise _bad(i, field, "must not be negative")
    return float(v)


def validate_rules(rules: Any) -> list[dict[str, Any]]:
    """Rules as stored (numbers as floats, a default name each), or InvalidInput naming the
    rule index and field."""
    if not isinstance(rules, list) or not rules:
        raise InvalidInput("rules must be a non-empty list of rule objects", {"field": "rules"})
    if len(rules) > MAX_RULES:
        raise InvalidInput(f"at most {MAX_RULES} rules", {"field": "rules"})
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            raise _bad(i, "type", "a rule must be an object with a type")
        kind = rule.get("type")
        if kind not in RULES:
            raise _bad(i, "type", f"unknown rule type {kind!r} (known: {', '.join(RULES)})")
        required, optional = RULES[kind]
        for field in sorted(set(rule) - required - optional - {"type", "name"}):
            raise _bad(i, field, f"unknown field for a {kind} rule")
        for field in sorted(required - set(rule)):
            raise _bad(i, field, f"required for a {kind} rule")
        clean: dict[str, Any] = {"type": kind}
        if "metric" in rule:
            if rule["metric"] not in METRICS:
                raise _bad(
                    i, "metric", f"unknown metric {rule['metric']!r} (known: {', '.join(METRICS)})"
                )
            clean["metric"] = rule["metric"]
        if kind == "metric":
            if "min" not in rule and "max" not in rule:
                raise _bad(i, "min", "a metric rule needs min, max or both")
            for f in ("min", "max"):
                if f in rule:
                    clean[f] = _num(rule, i, f)
        elif kind == "fairness":
            if rule["measure"] not in FAIRNESS_MEASURES:
                raise _bad(
                    i,
                    "measure",
                    f"unknown measure {rule['measure']!r} (known: {', '.join(FAIRNESS_MEASURES)})",
                )
            clean["measure"] = rule["measure"]
            clean["max"] = _num(rule, i, "max", nonneg=True)
        elif kind == "robustness":
            clean["max_drop"] = _num(rule, i, "max_drop")
            p = rule.get("perturbation", "max")
            if p not in PERTURBATIONS:
                raise _bad(i, "perturbation", f"must be one of {', '.join(PERTURBATIONS)}")
            clean["perturbation"] = p
        elif kind == "beats_baseline":
            clean["margin"] = _num(rule, i, "margin") if "margin" in rule else 0.0
        elif kind == "not_worse_than_champion":
            clean["tolerance"] = (
                _num(rule, i, "tolerance", nonneg=True) if "tolerance" in rule else 0.0
            )
        elif kind == "no_leakage":
            clean["max_shared_fraction"] = (
                _num(rule, i, "max_shared_fraction", nonneg=True)
                if "max_shared_fraction" in rule
                else 0.0
            )
        name = rule.get("name", _default_name(clean))
        if not isinstance(name, str) or not name.strip() or len(name) > 128:
            raise _bad(i, "name", "must be a non-empty string of up to 128 characters")
        if name in names:
            raise _bad(i, "name", f"two rules are named {name!r}; name them apart")
        names.add(name)
        out.append({"name": name, **clean})
    return out


def _default_name(rule: dict[str, Any]) -> str:
    kind = rule["type"]
    if kind == "metric":
        bounds = [
            f"{'min' if f == 'min' else 'max'}_{rule['metric']}"
            for f in ("min", "max")
            if f in rule
        ]
        return "+".join(bounds)
    if kind == "fairness":
        return f"max_{rule['measure']}"
    if kind == "robustness":
        return f"max_robustness_drop_{rule['perturbation']}"
    if kind in ("beats_baseline", "not_worse_than_champion"):
        return f"{kind}_{rule['metric']}"
    return kind


# -- checking -----------------------------------------------------------------------------------


def _gate(rule: dict, passed: bool, value: Any, threshold: Any, message: str) -> dict[str, Any]:
    return {
        "name": rule.get("name") or _default_name(rule),
        "rule": rule,
        "passed": bool(passed),
        "value": value,
        "threshold": threshold,
        "message": message,
    }


def _metric_value(block: dict | None, metric: str) -> float | None:
    m = ((block or {}).get("metrics") or {}).get(metric)
    v = m.get("value") if isinstance(m, dict) else None
    return float(v) if isinstance(v, numbers.Real) and math.isfinite(v) else None


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def check_gates(rules: list[dict[str, Any]], report: dict[str, Any]) -> list[dict[str, Any]]:
    """One result per rule: `{"name", "rule", "passed", "value", "threshold", "message"}`."""
    results = []
    model = {"metrics": report.get("metrics") or {}}
    for rule in rules:
        results.append(_check_one(rule, report, model))
    return results


def _check_one(rule: dict[str, Any], report: dict[str, Any], model: dict) -> dict[str, Any]:
    kind = rule["type"]
    if kind == "metric":
        v = _metric_value(model, rule["metric"])
        threshold = {k: rule[k] for k in ("min", "max") if k in rule}
        if v is None:
            return _gate(rule, False, None, threshold, f"{rule['metric']}: not evaluated")
        low_ok = "min" not in rule or v >= rule["min"]
        high_ok = "max" not in rule or v <= rule["max"]
        parts = []
        if "min" in rule:
            parts.append(f"{'≥' if low_ok else '<'} min {_fmt(rule['min'])}")
        if "max" in rule:
            parts.append(f"{'≤' if high_ok else '>'} max {_fmt(rule['max'])}")
        return _gate(
            rule,
            low_ok and high_ok,
            v,
            threshold,
            f"{rule['metric']} {_fmt(v)} " + ", ".join(parts),
        )
    if kind == "fairness":
        fair = report.get("fairness")
        v = (fair or {}).get(rule["measure"])
        if not fair or not isinstance(v, numbers.Real):
            return _gate(
                rule,
                False,
                None,
                rule["max"],
                f"{rule['measure']}: not evaluated (give a sensitive column)",
            )
        ok = v <= rule["max"]
        return _gate(
            rule,
            ok,
            float(v),
            rule["max"],
            f"{rule['measure']} on {fair.get('column')!r} {_fmt(v)} {'≤' if ok else '>'} max {_fmt(rule['max'])}",
        )
    if kind == "robustness":
        rob = report.get("robustness") or {}
        p = rule.get("perturbation", "max")
        v = rob.get("max_drop") if p == "max" else (rob.get(p) or {}).get("drop")
        if not isinstance(v, numbers.Real):
            return _gate(rule, False, None, rule["max_drop"], f"robustness ({p}): not evaluated")
        ok = v <= rule["max_drop"]
        return _gate(
            rule,
            ok,
            float(v),
            rule["max_drop"],
            f"{rob.get('metric', 'metric')} drop under {p} perturbation {_fmt(v)} {'≤' if ok else '>'} max {_fmt(rule['max_drop'])}",
        )
    if kind in ("beats_baseline", "not_worse_than_champion"):
        metric = rule["metric"]
        other_key = "baseline" if kind == "beats_baseline" else "champion"
        mine = _metric_value(model, metric)
        other_block = report.get(other_key)
        if other_block is None and kind == "not_worse_than_champion":
            return _gate(rule, True, mine, None, "no champion")
        theirs = _metric_value(other_block, metric)
        if mine is None or theirs is None:
            return _gate(
                rule, False, mine, None, f"{metric} of the model or the {other_key}: not evaluated"
            )
        higher = HIGHER_IS_BETTER.get(metric, True)
        if kind == "beats_baseline":
            margin = rule.get("margin", 0.0)
            threshold = theirs + margin if higher else theirs - margin
            ok = mine >= threshold if higher else mine <= threshold
            msg = f"{metric} {_fmt(mine)} vs baseline {_fmt(theirs)} (needs {'≥' if higher else '≤'} {_fmt(threshold)}, margin {_fmt(margin)})"
        else:
            tol = rule.get("tolerance", 0.0)
            threshold = theirs - tol if higher else theirs + tol
            ok = mine >= threshold if higher else mine <= threshold
            version = (other_block or {}).get("version")
            msg = f"{metric} {_fmt(mine)} vs champion v{version} {_fmt(theirs)} (needs {'≥' if higher else '≤'} {_fmt(threshold)})"
        return _gate(rule, ok, mine, threshold, msg)
    if kind == "no_leakage":
        leak = report.get("leakage")
        if not leak:
            return _gate(
                rule, False, None, rule.get("max_shared_fraction", 0.0), "leakage: not evaluated"
            )
        shared = float(leak.get("shared_fraction") or 0.0)
        suspects = list(leak.get("suspects") or [])
        limit = rule.get("max_shared_fraction", 0.0)
        ok = shared <= limit and not suspects
        msg = f"{leak.get('shared_rows', 0)} test rows also in train ({_fmt(shared)}; max {_fmt(limit)})"
        if suspects:
            msg += f"; features that alone predict the target: {', '.join(map(str, suspects))}"
        return _gate(rule, ok, {"shared_fraction": shared, "suspects": suspects}, limit, msg)
    if kind == "invariance":
        inv = (report.get("robustness") or {}).get("invariances") or []
        if not inv:
            return _gate(
                rule, False, None, None, "invariance: not evaluated (no invariance tests declared)"
            )
        broken = [i["name"] for i in inv if not i.get("passed")]
        return _gate(
            rule,
            not broken,
            len(inv) - len(broken),
            len(inv),
            f"broken: {', '.join(broken)}" if broken else f"all {len(inv)} invariance tests held",
        )
    raise InvalidInput(f"unknown rule type {kind!r}", {"field": "type"})  # validated on write


# -- gate sets (storage) ------------------------------------------------------------------------


def _check_name(name: str, field: str = "name") -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput(
            f"invalid {field} {name!r}: a letter or digit, then up to 127 letters, digits, '_.-'",
            {"field": field},
        )
    return name


def _current(session: Session, project_id: str, name: str) -> GateSet | None:
    return session.scalar(
        select(GateSet)
        .where(GateSet.project_id == project_id, GateSet.name == name)
        .order_by(GateSet.version.desc())
        .limit(1)
    )


def _live(session: Session, project_id: str, name: str) -> GateSet:
    gs = _current(session, project_id, name)
    if gs is None or gs.deleted:
        raise NotFound(f"gate set {name} not found")
    return gs


def _add_version(
    session: Session, actor: User, project_id: str, name: str, prev: GateSet | None, **fields: Any
) -> GateSet:
    gs = GateSet(
        project_id=project_id,
        name=name,
        version=(prev.version if prev else 0) + 1,
        created_by=actor.id,
        **fields,
    )
    session.add(gs)
    try:
        session.flush()
    except IntegrityError as err:
        raise Conflict(
            f"gate set {name} was changed at the same time; retry", {"field": "name"}
        ) from err
    return gs


def create_gate_set(
    session: Session, actor: User, slug: str, name: str, rules: Any, description: str = ""
) -> GateSet:
    """A new gate set (version 1, or the next version after a deleted one of that name)."""
    project = projects.resolve(session, actor, slug, Perm.gates_write)
    _check_name(name)
    clean = validate_rules(rules)
    prev = _current(session, project.id, name)
    if prev is not None and not prev.deleted:
        raise Conflict(f"gate set {name} already exists; update it instead", {"field": "name"})
    gs = _add_version(session, actor, project.id, name, prev, rules=clean, description=description)
    audit.record(
        session,
        actor,
        "gateset.create",
        f"gateset:{name}@{gs.version}",
        project_id=project.id,
        detail={"rules": clean},
    )
    return gs


def update_gate_set(
    session: Session,
    actor: User,
    slug: str,
    name: str,
    rules: Any,
    description: str | None = None,
) -> GateSet:
    """Replace the rules: a new version; evaluations keep naming the version they used."""
    project = projects.resolve(session, actor, slug, Perm.gates_write)
    prev = _live(session, project.id, name)
    clean = validate_rules(rules)
    gs = _add_version(
        session,
        actor,
        project.id,
        name,
        prev,
        rules=clean,
        description=prev.description if description is None else description,
    )
    audit.record(
        session,
        actor,
        "gateset.update",
        f"gateset:{name}@{gs.version}",
        project_id=project.id,
        detail={"rules": clean, "previous": prev.rules},
    )
    return gs


def delete_gate_set(session: Session, actor: User, slug: str, name: str) -> None:
    """Delete (a tombstone version); refused while the project requires this gate set."""
    project = projects.resolve(session, actor, slug, Perm.gates_write)
    prev = _live(session, project.id, name)
    if project.required_gate_set == name:
        raise Conflict(
            f"gate set {name} is the project's required gate set; require another (or none) first",
            {"field": "name"},
        )
    _add_version(session, actor, project.id, name, prev, rules=[], description="", deleted=True)
    audit.record(session, actor, "gateset.delete", f"gateset:{name}", project_id=project.id)


def get_gate_set(
    session: Session, actor: User, slug: str, name: str, version: int | None = None
) -> GateSet:
    """The current version, or a given one (also of a deleted set, for old evaluations)."""
    project = projects.resolve(session, actor, slug, Perm.model_read)
    if version is None:
        return _live(session, project.id, name)
    gs = session.scalar(
        select(GateSet).where(
            GateSet.project_id == project.id, GateSet.name == name, GateSet.version == version
        )
    )
    if gs is None or gs.deleted:
        raise NotFound(f"gate set {name} has no version {version}")
    return gs


def list_gate_sets(session: Session, actor: User, slug: str) -> list[GateSet]:
    """The current version of every live gate set, by name."""
    project = projects.resolve(session, actor, slug, Perm.model_read)
    latest = (
        select(GateSet.name, func.max(GateSet.version).label("v"))
        .where(GateSet.project_id == project.id)
        .group_by(GateSet.name)
        .subquery()
    )
    rows = session.scalars(
        select(GateSet)
        .join(latest, (GateSet.name == latest.c.name) & (GateSet.version == latest.c.v))
        .where(GateSet.project_id == project.id, GateSet.deleted.is_(False))
        .order_by(GateSet.name)
    )
    return list(rows)


def gate_set_history(session: Session, actor: User, slug: str, name: str) -> list[GateSet]:
    """Every version of a gate set, oldest first (tombstones included)."""
    project = projects.resolve(session, actor, slug, Perm.model_read)
    rows = list(
        session.scalars(
            select(GateSet)
            .where(GateSet.project_id == project.id, GateSet.name == name)
            .order_by(GateSet.version)
        )
    )
    if not rows:
        raise NotFound(f"gate set {name} not found")
    return rows


def check_required(session: Session, project_id: str, name: str | None) -> str | None:
    """For projects.update_project: the gate set to require ("" / None clears), or NotFound."""
    if not name:
        return None
    gs = _current(session, project_id, name)
    if gs is None or gs.deleted:
        raise InvalidInput(
            f"gate set {name} not found in this project", {"field": "required_gate_set"}
        )
    return name


def current_for(session: Session, project_id: str, name: str) -> GateSet | None:
    """The live current version of a gate set, no access check (callers have done it)."""
    gs = _current(session, project_id, name)
    return None if gs is None or gs.deleted else gs


def describe_gate_set(session: Session, gs: GateSet, required: str | None = None) -> dict[str, Any]:
    return {
        "id": gs.id,
        "name": gs.name,
        "version": gs.version,
        "rules": gs.rules,
        "description": gs.description,
        "deleted": gs.deleted,
        "required": required == gs.name,
        "created_by": _email(session, gs.created_by),
        "created_at": gs.created_at,
    }


def _email(session: Session, user_id: str) -> str:
    user = session.get(User, user_id)
    return user.email if user else ""


# -- invariance tests ---------------------------------------------------------------------------


def add_invariance(
    session: Session, actor: User, slug: str, name: str, column: str, description: str = ""
) -> InvarianceTest:
    """Declare "changing `column` must not change the prediction" (domain experts, QA)."""
    project = projects.resolve(session, actor, slug, Perm.invariance_write)
    _check_name(name)
    if not isinstance(column, str) or not column or len(column) > 256:
        raise InvalidInput("column must be a column name", {"field": "column"})
    exists = session.scalar(
        select(InvarianceTest.id).where(
            InvarianceTest.project_id == project.id, InvarianceTest.name == name
        )
    )
    if exists:
        raise Conflict(f"invariance test {name} already exists", {"field": "name"})
    inv = InvarianceTest(
        project_id=project.id,
        name=name,
        column=column,
        description=description,
        created_by=actor.id,
    )
    session.add(inv)
    try:
        session.flush()
    except IntegrityError as err:
        raise Conflict(f"invariance test {name} already exists", {"field": "name"}) from err
    audit.record(
        session,
        actor,
        "invariance.create",
        f"invariance:{name}",
        project_id=project.id,
        detail={"column": column},
    )
    return inv


def list_invariances(session: Session, actor: User, slug: str) -> list[InvarianceTest]:
    project = projects.resolve(session, actor, slug, Perm.model_read)
    return list(
        session.scalars(
            select(InvarianceTest)
            .where(InvarianceTest.project_id == project.id)
            .order_by(InvarianceTest.name)
        )
    )


def delete_invariance(session: Session, actor: User, slug: str, name: str) -> None:
    project = projects.resolve(session, actor, slug, Perm.invariance_write)
    inv = session.scalar(
        select(InvarianceTest).where(
            InvarianceTest.project_id == project.id, InvarianceTest.name == name
        )
    )
    if inv is None:
        raise NotFound(f"invariance test {name} not found")
    session.delete(inv)
    audit.record(
        session,
        actor,
        "invariance.delete",
        f"invariance:{name}",
        project_id=project.id,
        detail={"column": inv.column},
    )


def project_invariances(session: Session, project_id: str) -> list[dict[str, str]]:
    """For the evaluation job: `[{"name", "column"}]` (access checked by the caller)."""
    rows = session.scalars(
        select(InvarianceTest)
        .where(InvarianceTest.project_id == project_id)
        .order_by(InvarianceTest.name)
    )
    return [{"name": r.name, "column": r.column} for r in rows]


def describe_invariance(session: Session, inv: InvarianceTest) -> dict[str, Any]:
    return {
        "name": inv.name,
        "column": inv.column,
        "description": inv.description,
        "created_by": _email(session, inv.created_by),
        "created_at": inv.created_at,
    }
