"""Who may do what: the roles of DESIGN.md as one table of permissions.

Services call `require(session, actor, project_id, permission)` before they read or change
anything in a project. A user outside the project gets `NotFound` (the project's objects do
not exist for them); a member without the role gets `Forbidden`. Admins act as owners
everywhere. The REST API, SDK, CLI and UI all pass through here.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlteam.core.errors import Forbidden, NotFound
from mlteam.core.models import Membership, User


class Role(StrEnum):
    owner = "owner"
    stakeholder = "stakeholder"
    data_engineer = "data_engineer"
    labeler = "labeler"
    domain_expert = "domain_expert"
    data_scientist = "data_scientist"
    qa = "qa"
    devops = "devops"
    compliance = "compliance"
    viewer = "viewer"


class Perm(StrEnum):
    project_read = "project.read"  # that the project exists: its name, phase, my roles
    project_detail = "project.detail"  # goal, value matrix, members, model requests
    project_manage = "project.manage"  # members, settings
    business_write = "business.write"  # goal, success metric, value matrix, sign-offs
    request_create = "request.create"  # file a model request
    request_triage = "request.triage"  # priority and state of model requests
    audit_read = "audit.read"
    data_read = "data.read"
    data_write = "data.write"
    tracking_read = "tracking.read"
    tracking_write = "tracking.write"  # experiments, runs, training jobs
    model_read = "model.read"
    model_write = "model.write"  # register model versions
    card_write = "model.card.write"  # the human part of model cards
    signoff = "model.signoff"  # sign off promotion requests (as a role one holds)
    deploy_write = "deploy.write"
    predict = "serving.predict"
    feedback_write = "feedback.write"
    monitor_read = "monitor.read"
    job_read = "job.read"
    gates_write = "gates.write"  # gate sets and the project's required gate set (QA)
    invariance_write = "invariance.write"  # invariance tests ("changing X must not change Y")
    evaluate = "model.evaluate"  # run an evaluation of a model version against gates


_READ_ALL = {
    Perm.project_read,
    Perm.project_detail,
    Perm.audit_read,
    Perm.data_read,
    Perm.tracking_read,
    Perm.model_read,
    Perm.monitor_read,
    Perm.job_read,
}

GRANTS: dict[Role, frozenset[Perm]] = {
    Role.owner: frozenset(Perm),
    Role.stakeholder: frozenset(
        _READ_ALL
        | {Perm.business_write, Perm.request_create, Perm.request_triage, Perm.predict}
        | {Perm.feedback_write, Perm.signoff}
    ),
    Role.data_engineer: frozenset(_READ_ALL | {Perm.data_write, Perm.request_create}),
    Role.labeler: frozenset({Perm.project_read}),
    Role.domain_expert: frozenset(
        _READ_ALL
        | {Perm.request_create, Perm.feedback_write, Perm.predict, Perm.card_write}
        | {Perm.invariance_write}
    ),
    Role.data_scientist: frozenset(
        _READ_ALL
        | {Perm.tracking_write, Perm.model_write, Perm.request_create, Perm.predict}
        | {Perm.feedback_write, Perm.card_write, Perm.evaluate}
    ),
    Role.qa: frozenset(
        _READ_ALL
        | {Perm.request_create, Perm.predict, Perm.signoff}
        | {Perm.gates_write, Perm.invariance_write, Perm.evaluate}
    ),
    Role.devops: frozenset(
        _READ_ALL | {Perm.deploy_write, Perm.predict, Perm.feedback_write, Perm.request_create}
    ),
    Role.compliance: frozenset(_READ_ALL | {Perm.signoff}),
    Role.viewer: frozenset(_READ_ALL),
}


def roles_of(session: Session, user: User, project_id: str) -> set[Role]:
    rows = session.scalars(
        select(Membership.role).where(
            Membership.project_id == project_id, Membership.user_id == user.id
        )
    )
    return {Role(r) for r in rows}


def allowed(roles: set[Role], perm: Perm) -> bool:
    return any(perm in GRANTS[r] for r in roles)


def require(
    session: Session, actor: User, project_id: str, perm: Perm, *, what: str = "project"
) -> set[Role]:
    """Raise unless `actor` holds `perm` in the project; return the actor's roles there."""
    if actor.is_admin:
        return {Role.owner}
    roles = roles_of(session, actor, project_id)
    if not roles:
        raise NotFound(f"{what} not found")
    if not allowed(roles, perm):
        raise Forbidden(
            f"your roles ({', '.join(sorted(roles))}) do not allow {perm.value}",
            {"permission": perm.value, "roles": sorted(roles)},
        )
    return roles


def require_admin(actor: User) -> None:
    if not actor.is_admin:
        raise Forbidden("only an administrator may do this")
