"""Promotion requests: a version goes to an alias (default `production`) only with sign-offs.

A data scientist (or owner) asks for `version → alias` with a rationale. Each role the project
requires (`required_signoffs`, default `qa`; regulated projects add `compliance` and
`stakeholder`) approves or rejects once, with a rationale, by someone who holds that role. A
rejection ends the request; the last approval moves the alias in the same transaction. No one
signs off a request they made, and no one signs one request twice (each required role is a
different pair of eyes). The requester or an owner may withdraw an open request.

    open ──(every required role approves)──▶ approved   (alias moved)
      ├───(any required role rejects)──────▶ rejected
      └───(requester or owner withdraws)───▶ withdrawn
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import Perm, Role, require
from mlteam.core.db import utcnow
from mlteam.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mlteam.core.models import User
from mlteam.projects import service as projects
from mlteam.registry import service as registry
from mlteam.registry.models import ModelVersion, PromotionRequest, SignOff

STATES = ("open", "approved", "rejected", "withdrawn")
DECISIONS = ("approve", "reject")
DEFAULT_TARGET = "production"
MAX_RATIONALE = 10_000


def _rationale(text: str | None, *, required: bool = True) -> str:
    text = (text or "").strip()
    if required and not text:
        raise InvalidInput("a rationale is required", {"field": "rationale"})
    if len(text) > MAX_RATIONALE:
        raise InvalidInput(
            f"rationale is longer than {MAX_RATIONALE} characters", {"field": "rationale"}
        )
    return text


def _email(session: Session, user_id: str) -> str:
    user = session.get(User, user_id)
    return user.email if user else ""


def _signoffs(session: Session, req: PromotionRequest) -> list[SignOff]:
    return list(
        session.scalars(
            select(SignOff).where(SignOff.request_id == req.id).order_by(SignOff.at, SignOff.id)
        )
    )


def _target(req: PromotionRequest, name: str, version: int | None) -> str:
    return f"promotion:{req.number} ({name} v{version} → {req.target})"


def create_promotion(
    session: Session,
    actor: User,
    slug: str,
    name: str,
    version: int | str,
    rationale: str,
    target: str = DEFAULT_TARGET,
) -> PromotionRequest:
    """Ask for `name` `version` to become `target`, judged by the project's required roles."""
    project = projects.resolve(session, actor, slug, Perm.model_write)
    registry.check_alias(target)
    text = _rationale(rationale)
    mv = registry.get_version(session, actor, slug, name, version)
    if target in registry.aliases_of(session, mv):
        raise Conflict(f"{name} v{mv.version} already is {target}", {"field": "target"})
    # QA's gates: with a required gate set, only a version that passed it may be proposed.
    from mlteam.evaluation import service as evaluation  # lazy: evaluation imports registry

    evaluation.check_promotable(session, project, mv, name)
    open_key = f"{mv.id}:{target}"
    existing = session.scalar(select(PromotionRequest).where(PromotionRequest.open_key == open_key))
    if existing is not None:
        raise Conflict(
            f"promotion #{existing.number} of {name} v{mv.version} to {target} is already open",
            {"promotion": existing.number},
        )
    number = (
        session.scalar(
            select(func.max(PromotionRequest.number)).where(
                PromotionRequest.project_id == project.id
            )
        )
        or 0
    ) + 1
    req = PromotionRequest(
        project_id=project.id,
        number=number,
        model_version_id=mv.id,
        target=target,
        requester_id=actor.id,
        rationale=text,
        required=list(project.required_signoffs or [Role.qa.value]),
        state="open",
        open_key=open_key,
    )
    session.add(req)
    try:
        session.flush()
    except IntegrityError as err:
        raise Conflict(
            "another promotion request was opened at the same time; retry", {"target": target}
        ) from err
    audit.record(
        session,
        actor,
        "promotion.request",
        _target(req, name, mv.version),
        project_id=project.id,
        detail={"model": name, "version": mv.version, "alias": target, "required": req.required},
        rationale=text,
    )
    return req


def list_promotions(
    session: Session, actor: User, slug: str, state: str | None = None
) -> list[PromotionRequest]:
    """The project's promotion requests, newest first, optionally in one state."""
    project = projects.resolve(session, actor, slug, Perm.model_read)
    q = select(PromotionRequest).where(PromotionRequest.project_id == project.id)
    if state:
        if state not in STATES:
            raise InvalidInput(f"state must be one of {', '.join(STATES)}", {"field": "state"})
        q = q.where(PromotionRequest.state == state)
    return list(session.scalars(q.order_by(PromotionRequest.number.desc())))


def get_promotion(
    session: Session, actor: User, slug: str, number: int, *, lock: bool = False
) -> PromotionRequest:
    """Promotion `number` of the project. With `lock`, its row is held until the transaction
    ends and the request is read again after that, so concurrent sign-offs are decided one
    after the other and each sees the ones before it."""
    project = projects.resolve(session, actor, slug, Perm.model_read)
    req = session.scalar(
        select(PromotionRequest).where(
            PromotionRequest.project_id == project.id, PromotionRequest.number == number
        )
    )
    if req is None:
        raise NotFound(f"promotion #{number} not found in {slug}")
    if lock:
        # A no-op UPDATE rather than SELECT ... FOR UPDATE: it row-locks on PostgreSQL and, on
        # SQLite (which ignores FOR UPDATE and reads outside a transaction until the first
        # write), takes the database's write lock before anything is decided.
        session.execute(
            update(PromotionRequest)
            .where(PromotionRequest.id == req.id)
            .values(state=PromotionRequest.state)
            .execution_options(synchronize_session=False)
        )
        session.refresh(req)
    return req


def _close(req: PromotionRequest, state: str) -> None:
    req.state = state
    req.open_key = None
    req.decided_at = utcnow()


def _check_open(req: PromotionRequest) -> None:
    if req.state != "open":
        raise Conflict(
            f"promotion #{req.number} is {req.state}; only an open request can change",
            {"state": req.state},
        )


def sign(
    session: Session,
    actor: User,
    slug: str,
    number: int,
    role: str,
    decision: str,
    rationale: str,
) -> PromotionRequest:
    """Approve or reject a promotion as `role`, which the actor must hold.

    A rejection closes the request; the last required approval moves the alias, all in this
    transaction. The requester may never sign their own request."""
    req = get_promotion(session, actor, slug, number, lock=True)
    if req.requester_id == actor.id:
        raise Forbidden(
            f"you requested promotion #{number}: no one signs off a request they made, "
            "whatever roles they hold",
            {"promotion": number},
        )
    require(session, actor, req.project_id, Perm.signoff)
    if decision not in DECISIONS:
        raise InvalidInput(f"decision must be one of {', '.join(DECISIONS)}", {"field": "decision"})
    text = _rationale(rationale)
    if role not in req.required:
        raise InvalidInput(
            f"{role!r} is not a sign-off promotion #{number} needs "
            f"(required: {', '.join(req.required)})",
            {"field": "role", "required": req.required},
        )
    project = projects.by_id(session, req.project_id)
    held = projects.my_roles(session, actor, project)
    if role not in held:
        raise Forbidden(
            f"you cannot sign off as {role}: your roles in {slug} are {', '.join(held)}",
            {"role": role, "roles": held},
        )
    _check_open(req)
    done = _signoffs(session, req)
    for s in done:
        if s.role == role:
            raise Conflict(
                f"{role} has already signed off promotion #{number} ({s.decision}, by "
                f"{_email(session, s.user_id)})",
                {"role": role},
            )
        if s.user_id == actor.id:
            raise Forbidden(
                f"you already signed off promotion #{number} as {s.role}: each required "
                "sign-off needs a different person",
                {"role": s.role},
            )
    session.add(
        SignOff(request_id=req.id, role=role, user_id=actor.id, decision=decision, rationale=text)
    )
    try:
        session.flush()
    except IntegrityError as err:
        raise Conflict(f"{role} signed off promotion #{number} at the same time") from err
    mv = session.get(ModelVersion, req.model_version_id)
    if mv is None:
        raise NotFound(f"the model version of promotion #{number} no longer exists")
    name = registry.model_name(session, mv)
    target = _target(req, name, mv.version)
    detail = {"role": role, "decision": decision, "model": name, "version": mv.version}
    audit.record(
        session,
        actor,
        "promotion.signoff",
        target,
        project_id=req.project_id,
        detail=detail,
        rationale=text,
    )
    if decision == "reject":
        _close(req, "rejected")
        audit.record(
            session,
            actor,
            "promotion.reject",
            target,
            project_id=req.project_id,
            detail={"role": role},
            rationale=text,
        )
        return req
    approved = {s.role for s in done if s.decision == "approve"} | {role}
    if set(req.required) <= approved:
        _, previous = registry.point_alias(session, mv, req.target)
        _close(req, "approved")
        audit.record(
            session,
            actor,
            "model.alias.set",
            f"model:{name}@{req.target}",
            project_id=req.project_id,
            detail={
                "version": mv.version,
                "previous": previous.version if previous else None,
                "promotion": number,
            },
            rationale=req.rationale,
        )
        audit.record(
            session,
            actor,
            "promotion.approve",
            target,
            project_id=req.project_id,
            detail={"alias": req.target, "signed_off_by": sorted(approved)},
            rationale=text,
        )
    return req


def withdraw(
    session: Session, actor: User, slug: str, number: int, rationale: str | None = None
) -> PromotionRequest:
    """The requester (or an owner) ends an open request."""
    req = get_promotion(session, actor, slug, number, lock=True)
    if req.requester_id != actor.id:
        try:
            require(session, actor, req.project_id, Perm.project_manage)
        except Forbidden as err:
            raise Forbidden(
                f"only the requester of promotion #{number} or an owner may withdraw it"
            ) from err
    text = _rationale(rationale, required=False)
    _check_open(req)
    _close(req, "withdrawn")
    mv = session.get(ModelVersion, req.model_version_id)
    name = registry.model_name(session, mv) if mv else ""
    audit.record(
        session,
        actor,
        "promotion.withdraw",
        _target(req, name, mv.version if mv else None),
        project_id=req.project_id,
        rationale=text or None,
    )
    return req


def describe(session: Session, req: PromotionRequest) -> dict[str, Any]:
    """A request as the API shows it: sign-offs so far and the roles still pending."""
    mv = session.get(ModelVersion, req.model_version_id)
    signoffs = _signoffs(session, req)
    signed = {s.role for s in signoffs}
    return {
        "id": req.id,
        "number": req.number,
        "model": registry.model_name(session, mv) if mv else "",
        "version": mv.version if mv else None,
        "target": req.target,
        "requester": _email(session, req.requester_id),
        "rationale": req.rationale,
        "state": req.state,
        "required": list(req.required),
        "pending": [r for r in req.required if r not in signed] if req.state == "open" else [],
        "signoffs": [
            {
                "role": s.role,
                "user": _email(session, s.user_id),
                "decision": s.decision,
                "rationale": s.rationale,
                "at": s.at,
            }
            for s in signoffs
        ],
        "created_at": req.created_at,
        "decided_at": req.decided_at,
    }
