"""HTTP routes of projects: settings, members, model requests, audit log."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from mlteam.core.models import User
from mlteam.core.schemas import AuditEventOut
from mlteam.projects import service
from mlteam.projects.models import Project
from mlteam.projects.schemas import (
    MemberIn,
    MemberOut,
    ModelRequestIn,
    ModelRequestOut,
    ModelRequestPatch,
    ProjectIn,
    ProjectOut,
    ProjectPatch,
)
from mlteam.server.deps import CurrentUser, SessionDep

router = APIRouter(prefix="/projects", tags=["projects"])


def _out(session: Session, user: User, project: Project) -> ProjectOut:
    return ProjectOut.model_validate(service.view(session, user, project))


@router.post("", response_model=ProjectOut, status_code=201)
def create_project(body: ProjectIn, session: SessionDep, user: CurrentUser) -> ProjectOut:
    project = service.create_project(session, user, **body.model_dump())
    return _out(session, user, project)


@router.get("", response_model=list[ProjectOut])
def list_projects(session: SessionDep, user: CurrentUser) -> list[ProjectOut]:
    return [_out(session, user, p) for p in service.list_projects(session, user)]


@router.get("/{slug}", response_model=ProjectOut)
def get_project(slug: str, session: SessionDep, user: CurrentUser) -> ProjectOut:
    return _out(session, user, service.resolve(session, user, slug))


@router.patch("/{slug}", response_model=ProjectOut)
def update_project(
    slug: str, body: ProjectPatch, session: SessionDep, user: CurrentUser
) -> ProjectOut:
    project = service.update_project(session, user, slug, body.model_dump(exclude_unset=True))
    return _out(session, user, project)


@router.get("/{slug}/members", response_model=list[MemberOut])
def list_members(slug: str, session: SessionDep, user: CurrentUser) -> object:
    return service.list_members(session, user, slug)


@router.post("/{slug}/members", status_code=201, response_model=list[MemberOut])
def add_member(slug: str, body: MemberIn, session: SessionDep, user: CurrentUser) -> object:
    service.add_member(session, user, slug, body.email, body.role)
    session.flush()
    return service.list_members(session, user, slug)


@router.delete("/{slug}/members/{email}/{role}", status_code=204)
def remove_member(
    slug: str, email: str, role: str, session: SessionDep, user: CurrentUser
) -> Response:
    service.remove_member(session, user, slug, email, role)
    return Response(status_code=204)


@router.post("/{slug}/requests", response_model=ModelRequestOut, status_code=201)
def create_request(
    slug: str, body: ModelRequestIn, session: SessionDep, user: CurrentUser
) -> object:
    return service.create_request(session, user, slug, **body.model_dump())


@router.get("/{slug}/requests", response_model=list[ModelRequestOut])
def list_requests(
    slug: str, session: SessionDep, user: CurrentUser, state: str | None = None
) -> object:
    return service.list_requests(session, user, slug, state)


@router.patch("/{slug}/requests/{number}", response_model=ModelRequestOut)
def triage_request(
    slug: str, number: int, body: ModelRequestPatch, session: SessionDep, user: CurrentUser
) -> object:
    return service.triage_request(session, user, slug, number, **body.model_dump())


@router.get("/{slug}/audit", response_model=list[AuditEventOut])
def audit_log(
    slug: str,
    session: SessionDep,
    user: CurrentUser,
    action: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> object:
    return service.audit_log(session, user, slug, action=action, limit=limit)


@router.get("/{slug}/jobs", tags=["jobs"])
def list_jobs(slug: str, session: SessionDep, user: CurrentUser) -> object:
    from mlteam.core import jobs
    from mlteam.core.schemas import JobOut

    project = service.resolve(session, user, slug)
    return [JobOut.model_validate(j) for j in jobs.list_jobs(session, user, project.id)]
