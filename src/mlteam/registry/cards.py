"""Model cards: one per model version, part generated from what the platform knows, part written.

The generated part (model, owner, run with its params and metrics, training data, signature,
aliases and stage, evaluation) is computed afresh on every read, so it is never stale. The
written part (intended use, limitations, ethical considerations, caveats, notes) is versioned:
each edit stores a new `ModelCardRevision`, and a read shows the newest one (or any older one)
merged with the generated facts. Run and data facts come through tracking's and data's
service functions, never their tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import Perm
from mlteam.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mlteam.core.models import User
from mlteam.data import service as data
from mlteam.projects import service as projects
from mlteam.registry import service as registry
from mlteam.registry.models import ModelCardRevision, ModelVersion
from mlteam.tracking import service as tracking

# The written part of a card, in the order a reader meets it.
HUMAN_FIELDS = ("intended_use", "limitations", "ethical_considerations", "caveats", "notes")
MAX_FIELD = 20_000


def _email(session: Session, user_id: str | None) -> str | None:
    user = session.get(User, user_id) if user_id else None
    return user.email if user else None


def _run_facts(session: Session, actor: User, run_id: str | None) -> dict[str, Any] | None:
    if not run_id:
        return None
    try:
        run = tracking.get_run(session, actor, run_id)
    except (NotFound, Forbidden):
        return {"id": run_id, "available": False}
    info = tracking.describe(session, run)
    return {
        "id": info["id"],
        "name": info["name"],
        "experiment": info["experiment"],
        "status": info["status"],
        "params": info["params"],
        "metrics": info["metrics"],
    }


def _data_facts(session: Session, actor: User, mv: ModelVersion) -> list[dict[str, Any]]:
    out = []
    for ref in mv.lineage.get("dataset_versions", []):
        try:
            info = data.describe(session, data.version_by_id(session, actor, ref["id"]))
        except (NotFound, Forbidden):
            out.append(
                {
                    "id": ref.get("id"),
                    "dataset": ref.get("dataset"),
                    "version": ref.get("n"),
                    "available": False,
                }
            )
            continue
        out.append(
            {
                "id": info["id"],
                "dataset": info["dataset"],
                "version": info["n"],
                "rows": info["row_count"],
                "columns": info["columns"],
            }
        )
    return out


def _signature(mv: ModelVersion) -> dict[str, Any]:
    sig = mv.signature or {}
    outputs = sig.get("outputs")
    if outputs is None:
        outputs = [sig["output"]] if sig.get("output") else []
    return {"inputs": sig.get("inputs", []), "outputs": outputs, "task": sig.get("task")}


def generated_facts(session: Session, actor: User, mv: ModelVersion) -> dict[str, Any]:
    """What the platform knows about a version, gathered now (access checked by the caller)."""
    aliases = registry.aliases_of(session, mv)
    return {
        "model": registry.model_name(session, mv),
        "version": mv.version,
        "description": mv.description,
        "owner": _email(session, mv.created_by),
        "created_at": mv.created_at,
        "format": mv.format,
        "run": _run_facts(session, actor, mv.run_id),
        "metrics": mv.metrics,
        "training_data": _data_facts(session, actor, mv),
        "signature": _signature(mv),
        "aliases": aliases,
        "stage": registry.stage_of(session, mv, aliases),
        "tags": registry.version_tags(session, mv),
        "evaluation": next(iter(registry.evaluations_of(session, mv)), None),  # the latest
    }


def _evaluation_lines(ev: dict[str, Any] | None) -> list[str]:
    if not ev:
        return ["_No evaluation report yet._", ""]
    gates = "no gate set"
    if ev["gate_set"]:
        verdict = "passed" if ev["passed"] else "failed: " + ", ".join(ev["failed_gates"])
        gates = f"gate set {ev['gate_set']} v{ev['gate_set_version']} {verdict}"
    value = "" if ev["value"] is None else f", {ev['primary_metric']} {ev['value']:.4f}"
    return [
        f"Evaluation {ev['number']} ({gates}{value}). {ev['statement'] or ''}",
        "",
        f"Report: [{ev['report_html']}]({ev['report_html']})",
        "",
    ]


def _revision(session: Session, mv: ModelVersion, n: int | None) -> ModelCardRevision | None:
    q = select(ModelCardRevision).where(ModelCardRevision.model_version_id == mv.id)
    if n is None:
        return session.scalar(q.order_by(ModelCardRevision.n.desc()).limit(1))
    return session.scalar(q.where(ModelCardRevision.n == n))


def _card(
    session: Session, actor: User, mv: ModelVersion, rev: ModelCardRevision | None
) -> dict[str, Any]:
    content = rev.content if rev else {}
    return {
        "model": registry.model_name(session, mv),
        "version": mv.version,
        "revision": rev.n if rev else 0,
        "edited_by": _email(session, rev.edited_by) if rev else None,
        "edited_at": rev.at if rev else None,
        "generated": generated_facts(session, actor, mv),
        "human": {f: str(content.get(f, "")) for f in HUMAN_FIELDS},
    }


def get_card(
    session: Session,
    actor: User,
    slug: str,
    name: str,
    version: int | str,
    revision: int | None = None,
) -> dict[str, Any]:
    """The card of a version: the newest written revision (or `revision`) and fresh facts.

    Revision 0 means nobody has written anything yet."""
    mv = registry.get_version(session, actor, slug, name, version)
    rev = None
    if revision is not None and revision != 0:
        rev = _revision(session, mv, revision)
        if rev is None:
            raise NotFound(f"model {name} version {mv.version} has no card revision {revision}")
    elif revision is None:
        rev = _revision(session, mv, None)
    return _card(session, actor, mv, rev)


def card_revisions(
    session: Session, actor: User, slug: str, name: str, version: int | str
) -> list[dict[str, Any]]:
    """Every written revision of a version's card, oldest first."""
    mv = registry.get_version(session, actor, slug, name, version)
    rows = session.scalars(
        select(ModelCardRevision)
        .where(ModelCardRevision.model_version_id == mv.id)
        .order_by(ModelCardRevision.n)
    )
    return [
        {"revision": r.n, "edited_by": _email(session, r.edited_by), "at": r.at, "human": r.content}
        for r in rows
    ]


def edit_card(
    session: Session,
    actor: User,
    slug: str,
    name: str,
    version: int | str,
    changes: dict[str, str | None],
) -> dict[str, Any]:
    """Write part of a card: fields given replace the newest revision's, the rest carry over.

    Data scientists, domain experts and owners write cards (Perm.card_write). A change makes
    a new revision; an edit that changes nothing makes none."""
    project = projects.resolve(session, actor, slug, Perm.card_write)
    mv = registry.get_version(session, actor, slug, name, version)
    unknown = sorted(set(changes) - set(HUMAN_FIELDS))
    if unknown:
        raise InvalidInput(
            f"unknown model card field {unknown[0]!r}; fields: {', '.join(HUMAN_FIELDS)}",
            {"field": unknown[0]},
        )
    for key, value in changes.items():
        if value is not None and (not isinstance(value, str) or len(value) > MAX_FIELD):
            raise InvalidInput(
                f"{key} must be text of at most {MAX_FIELD} characters", {"field": key}
            )
    latest = _revision(session, mv, None)
    before = {f: str((latest.content if latest else {}).get(f, "")) for f in HUMAN_FIELDS}
    after = {f: (changes[f] if changes.get(f) is not None else before[f]) for f in HUMAN_FIELDS}
    changed = [f for f in HUMAN_FIELDS if after[f] != before[f]]
    if not changed:
        return _card(session, actor, mv, latest)
    n = (
        session.scalar(
            select(func.max(ModelCardRevision.n)).where(ModelCardRevision.model_version_id == mv.id)
        )
        or 0
    ) + 1
    rev = ModelCardRevision(model_version_id=mv.id, n=n, content=after, edited_by=actor.id)
    session.add(rev)
    try:
        session.flush()
    except IntegrityError as err:
        raise Conflict(
            f"the card of {name} v{mv.version} was edited at the same time; reload and retry"
        ) from err
    audit.record(
        session,
        actor,
        "model.card.edit",
        f"model:{name}/{mv.version}",
        project_id=project.id,
        detail={"revision": n, "changed": changed},
    )
    return _card(session, actor, mv, rev)


# -- Markdown ----------------------------------------------------------------------------------

_HEADINGS = {
    "intended_use": "Intended use",
    "limitations": "Limitations",
    "ethical_considerations": "Ethical considerations",
    "caveats": "Caveats and recommendations",
    "notes": "Notes",
}


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        value = value.strftime("%Y-%m-%d %H:%M UTC")
    text = "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _written(card: dict[str, Any], field: str) -> list[str]:
    text = card["human"].get(field, "").strip()
    return [f"## {_HEADINGS[field]}", "", text or "_Not written yet._", ""]


def render_markdown(card: dict[str, Any]) -> str:
    """A card as a Markdown document (facts as tables, written parts as they were written)."""
    g = card["generated"]
    title = f"# Model card: {g['model']} v{g['version']}"
    if card["revision"]:
        at = _cell(card["edited_at"])
        byline = f"_Revision {card['revision']}, edited by {card['edited_by']} at {at}._"
    else:
        byline = "_Generated from the platform; nothing has been written for this card yet._"
    out = [title, "", byline, ""]
    out += _table(
        ("fact", "value"),
        [
            ("Model", g["model"]),
            ("Version", g["version"]),
            ("Owner", g["owner"]),
            ("Created", g["created_at"]),
            ("Stage", g["stage"]),
            ("Aliases", ", ".join(g["aliases"]) or "—"),
            ("Format", g["format"]),
            ("Task", g["signature"].get("task")),
        ],
    )
    if g["description"]:
        out += ["## Description", "", g["description"], ""]
    out += _written(card, "intended_use")
    run = g["run"]
    out += ["## Training run", ""]
    if run is None:
        out += ["_No run recorded._", ""]
    elif run.get("available") is False:
        out += [f"Run `{run['id']}` (no longer available).", ""]
    else:
        out += [
            f"Run `{run['id']}` ({run['name']}, experiment {run['experiment']}): {run['status']}.",
            "",
        ]
        if run["params"]:
            out += ["### Parameters", ""] + _table(
                ("param", "value"), sorted(run["params"].items())
            )
        if run["metrics"]:
            out += ["### Metrics", ""] + _table(("metric", "value"), sorted(run["metrics"].items()))
    out += ["## Training data", ""]
    if g["training_data"]:
        out += _table(
            ("dataset", "version", "rows", "columns"),
            [
                (d["dataset"], d["version"], d.get("rows", "?"), len(d.get("columns", [])) or "?")
                for d in g["training_data"]
            ],
        )
    else:
        out += ["_No dataset versions recorded._", ""]
    sig = g["signature"]
    out += ["## Signature", ""]
    if sig["inputs"]:
        out += ["Inputs:", ""] + _table(
            ("name", "type"), [(i.get("name"), i.get("type")) for i in sig["inputs"]]
        )
    if sig["outputs"]:
        out += ["Outputs:", ""] + _table(
            ("name", "type", "classes"),
            [(o.get("name"), o.get("type"), o.get("classes", "")) for o in sig["outputs"]],
        )
    out += ["## Evaluation", ""]
    out += _evaluation_lines(g["evaluation"])
    for field in ("limitations", "ethical_considerations", "caveats", "notes"):
        out += _written(card, field)
    if g["tags"]:
        out += ["## Tags", ""] + _table(("key", "value"), sorted(g["tags"].items()))
    return "\n".join(out).rstrip() + "\n"
