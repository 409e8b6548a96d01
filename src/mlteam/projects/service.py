"""Projects: business settings, members and roles, the model-request backlog, the audit log.

Other capabilities find a project and check access through `resolve`, never its table.
"""

from __future__ import annotations

import numbers
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import GRANTS, Perm, Role, require, roles_of
from mlteam.core.auth import get_user_by_email
from mlteam.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mlteam.core.models import AuditEvent, Membership, User
from mlteam.projects.models import ModelRequest, Project

PRIORITIES = ("low", "medium", "high", "critical")
REQUEST_STATES = ("new", "accepted", "in_progress", "done", "rejected")


def resolve(session: Session, actor: User, slug: str, perm: Perm = Perm.project_read) -> Project:
    """The project `slug` if the actor holds `perm` in it (404 for non-members)."""
    project = session.scalar(select(Project).where(Project.slug == slug))
    if project is None:
        raise NotFound(f"project {slug} not found")
    require(session, actor, project.id, perm, what=f"project {slug}")
    return project


def by_id(session: Session, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"project {project_id} not found")
    return project


def check_value_matrix(vm: dict[str, Any]) -> dict[str, Any]:
    """Either {"cost_per_unit_error": x} or {truth: {prediction: value}} with numbers."""
    if not vm:
        return {}
    if set(vm) == {"cost_per_unit_error"}:
        if not isinstance(vm["cost_per_unit_error"], numbers.Real):
            raise InvalidInput("cost_per_unit_error must be a number", {"field": "value_matrix"})
        return vm
    for truth, row in vm.items():
        if not isinstance(row, dict) or not row:
            raise InvalidInput(
                f"value_matrix[{truth!r}] must map each prediction to a value",
                {"field": f"value_matrix.{truth}"},
            )
        for pred, value in row.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise InvalidInput(
                    f"value_matrix[{truth!r}][{pred!r}] must be a number",
                    {"field": f"value_matrix.{truth}.{pred}"},
                )
    return vm


def create_project(
    session: Session,
    actor: User,
    slug: str,
    *,
    name: str = "",
    goal: str = "",
    success_metric: str = "",
    value_matrix: dict[str, Any] | None = None,
    required_signoffs: list[str] | None = None,
) -> Project:
    """Any user may start a project; they become its owner."""
    if session.scalar(select(Project.id).where(Project.slug == slug)):
        raise Conflict(f"project {slug} already exists", {"field": "slug"})
    project = Project(
        slug=slug,
        name=name or slug,
        goal=goal,
        success_metric=success_metric,
        value_matrix=check_value_matrix(value_matrix or {}),
        required_signoffs=[Role(r).value for r in (required_signoffs or ["qa"])],
        created_by=actor.id,
    )
    session.add(project)
    try:
        session.flush()
    except IntegrityError as err:
        raise Conflict(f"project {slug} already exists", {"field": "slug"}) from err
    session.add(Membership(project_id=project.id, user_id=actor.id, role=Role.owner.value))
    audit.record(session, actor, "project.create", f"project:{slug}", project_id=project.id)
    return project


def list_projects(session: Session, actor: User) -> list[Project]:
    q = select(Project).order_by(Project.slug)
    if not actor.is_admin:
        q = q.where(
            Project.id.in_(select(Membership.project_id).where(Membership.user_id == actor.id))
        )
    return list(session.scalars(q))


_BUSINESS_FIELDS = {"goal", "success_metric", "value_matrix"}
_MANAGE_FIELDS = {"name", "required_signoffs", "trust_pickle"}
_GATES_FIELDS = {"required_gate_set"}


def update_project(session: Session, actor: User, slug: str, changes: dict[str, Any]) -> Project:
    """Stakeholders set the business fields; owners the settings."""
    project = resolve(session, actor, slug)
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise InvalidInput("nothing to change: give at least one field", {"field": "body"})
    if changes.keys() & _BUSINESS_FIELDS:
        require(session, actor, project.id, Perm.business_write)
    if changes.keys() & _MANAGE_FIELDS:
        require(session, actor, project.id, Perm.project_manage)
    if changes.keys() & _GATES_FIELDS:
        require(session, actor, project.id, Perm.gates_write)
        # lazy: evaluation uses projects; "" clears the requirement
        from mlteam.evaluation import gates

        changes["required_gate_set"] = gates.check_required(
            session, project.id, changes["required_gate_set"]
        )
    if "value_matrix" in changes:
        changes["value_matrix"] = check_value_matrix(changes["value_matrix"])
    if "required_signoffs" in changes:
        signoffs = [Role(r).value for r in changes["required_signoffs"]]
        if not signoffs:
            raise InvalidInput(
                "at least one sign-off role is required", {"field": "required_signoffs"}
            )
        changes["required_signoffs"] = signoffs
    for key, value in changes.items():
        setattr(project, key, value)
    audit.record(
        session,
        actor,
        "project.update",
        f"project:{slug}",
        project_id=project.id,
        detail={"changed": sorted(changes)},
    )
    return project


def view(session: Session, actor: User, project: Project) -> dict[str, Any]:
    """What the actor may see of a project: labelers see that it exists, not its business."""
    out = {c.name: getattr(project, c.name) for c in Project.__table__.columns}
    roles = set(my_roles(session, actor, project))
    if not any(Perm.project_detail in GRANTS[Role(r)] for r in roles):
        out.update(goal="", success_metric="", value_matrix={})
    out["phase"] = phase(session, project)
    out["my_roles"] = sorted(roles)
    return out


def my_roles(session: Session, actor: User, project: Project) -> list[str]:
    roles = roles_of(session, actor, project.id)
    if actor.is_admin:
        roles.add(Role.owner)
    return sorted(r.value for r in roles)


def phase(session: Session, project: Project) -> str:
    """Derived from state, never set: ideation → experimentation → development → production
    → iteration (DESIGN.md). Asks each capability's service, not its tables."""
    from mlteam.data import service as data
    from mlteam.evaluation import service as evaluation
    from mlteam.monitoring import service as monitoring
    from mlteam.serving import service as serving
    from mlteam.tracking import service as tracking

    if monitoring.count_feedback(session, project.id) or tracking.count_runs(
        session, project.id, kind="retrain"
    ):
        return "iteration"
    if serving.count_live_deployments(session, project.id):
        return "production"
    if evaluation.count_passing(session, project.id):  # a registered version passed its gates
        return "development"
    if data.count_versions(session, project.id) or tracking.count_runs(session, project.id):
        return "experimentation"
    return "ideation"


# -- members -------------------------------------------------------------------------------


def add_member(session: Session, actor: User, slug: str, email: str, role: str) -> Membership:
    project = resolve(session, actor, slug, Perm.project_manage)
    user = get_user_by_email(session, email)
    role = Role(role).value
    exists = session.scalar(
        select(Membership).where(
            Membership.project_id == project.id,
            Membership.user_id == user.id,
            Membership.role == role,
        )
    )
    if exists:
        return exists
    m = Membership(project_id=project.id, user_id=user.id, role=role)
    session.add(m)
    audit.record(
        session,
        actor,
        "member.add",
        f"user:{user.email}",
        project_id=project.id,
        detail={"role": role},
    )
    return m


def remove_member(session: Session, actor: User, slug: str, email: str, role: str) -> None:
    project = resolve(session, actor, slug, Perm.project_manage)
    if role not in {r.value for r in Role}:
        raise InvalidInput(f"unknown role {role!r}", {"field": "role"})
    user = get_user_by_email(session, email)
    m = session.scalar(
        select(Membership).where(
            Membership.project_id == project.id,
            Membership.user_id == user.id,
            Membership.role == Role(role).value,
        )
    )
    if m is None:
        raise NotFound(f"{email} has no role {role} in {slug}")
    if role == Role.owner.value:
        owners = session.scalar(
            select(func.count()).where(
                Membership.project_id == project.id, Membership.role == Role.owner.value
            )
        )
        if owners <= 1:
            raise Conflict("a project keeps at least one owner")
    session.delete(m)
    audit.record(
        session,
        actor,
        "member.remove",
        f"user:{email}",
        project_id=project.id,
        detail={"role": role},
    )


def list_members(session: Session, actor: User, slug: str) -> list[dict[str, Any]]:
    project = resolve(session, actor, slug, Perm.project_detail)
    rows = session.execute(
        select(User.email, User.id, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.project_id == project.id)
        .order_by(User.email, Membership.role)
    )
    members: dict[str, dict[str, Any]] = {}
    for email, user_id, role in rows:
        members.setdefault(email, {"email": email, "user_id": user_id, "roles": []})
        members[email]["roles"].append(role)
    return list(members.values())


# -- model requests ----------------------------------------------------------------------------


def create_request(
    session: Session,
    actor: User,
    slug: str,
    *,
    title: str,
    problem: str = "",
    metric: str = "",
    priority: str = "medium",
) -> ModelRequest:
    project = resolve(session, actor, slug, Perm.request_create)
    if priority not in PRIORITIES:
        raise InvalidInput(f"priority must be one of {PRIORITIES}", {"field": "priority"})
    number = (
        session.scalar(
            select(func.max(ModelRequest.number)).where(ModelRequest.project_id == project.id)
        )
        or 0
    ) + 1
    req = ModelRequest(
        project_id=project.id,
        number=number,
        title=title,
        problem=problem,
        metric=metric,
        priority=priority,
        requested_by=actor.id,
    )
    session.add(req)
    session.flush()
    audit.record(
        session,
        actor,
        "request.create",
        f"request:{number}",
        project_id=project.id,
        detail={"title": title, "priority": priority},
    )
    return req


def list_requests(
    session: Session, actor: User, slug: str, state: str | None = None
) -> list[ModelRequest]:
    project = resolve(session, actor, slug, Perm.project_detail)
    q = select(ModelRequest).where(ModelRequest.project_id == project.id)
    if state:
        q = q.where(ModelRequest.state == state)
    order = {p: i for i, p in enumerate(reversed(PRIORITIES))}
    rows = list(session.scalars(q.order_by(ModelRequest.number)))
    return sorted(rows, key=lambda r: (order.get(r.priority, 9), r.number))


def triage_request(
    session: Session,
    actor: User,
    slug: str,
    number: int,
    *,
    priority: str | None = None,
    state: str | None = None,
    rationale: str | None = None,
) -> ModelRequest:
    project = resolve(session, actor, slug, Perm.project_read)
    req = session.scalar(
        select(ModelRequest).where(
            ModelRequest.project_id == project.id, ModelRequest.number == number
        )
    )
    if req is None:
        raise NotFound(f"model request {number} not found in {slug}")
    try:
        require(session, actor, project.id, Perm.request_triage)
    except Forbidden as err:
        raise Forbidden("only stakeholders and owners triage model requests") from err
    before = {"priority": req.priority, "state": req.state}
    if priority is not None:
        req.priority = priority
    if state is not None:
        req.state = state
    audit.record(
        session,
        actor,
        "request.triage",
        f"request:{number}",
        project_id=project.id,
        detail={"before": before, "after": {"priority": req.priority, "state": req.state}},
        rationale=rationale,
    )
    return req


# -- audit ---------------------------------------------------------------------------------


def audit_log(
    session: Session, actor: User, slug: str, *, action: str | None = None, limit: int = 100
) -> list[AuditEvent]:
    project = resolve(session, actor, slug, Perm.audit_read)
    return audit.events(session, project.id, action=action, limit=min(max(limit, 1), 1000))
