"""HTTP routes of the model registry."""

from __future__ import annotations

from fastapi import APIRouter

from mlteam.registry import service
from mlteam.registry.schemas import AliasIn, ModelOut, VersionIn, VersionOut
from mlteam.server.deps import CurrentUser, PlatformDep, SessionDep

router = APIRouter(prefix="/projects/{slug}/models", tags=["registry"])


@router.get("", response_model=list[ModelOut])
def list_models(slug: str, session: SessionDep, user: CurrentUser) -> object:
    return service.list_models(session, user, slug)


@router.post("/{name}/versions", response_model=VersionOut, status_code=201)
def register_version(
    slug: str,
    name: str,
    body: VersionIn,
    session: SessionDep,
    user: CurrentUser,
    platform: PlatformDep,
) -> object:
    mv = service.register_version(
        session, user, platform.artifacts, slug, name, body.run_id, body.description
    )
    return service.describe(session, mv)


@router.get("/{name}/versions", response_model=list[VersionOut])
def list_versions(slug: str, name: str, session: SessionDep, user: CurrentUser) -> object:
    return [service.describe(session, v) for v in service.list_versions(session, user, slug, name)]


@router.get("/{name}/versions/{version}", response_model=VersionOut)
def get_version(
    slug: str, name: str, version: str, session: SessionDep, user: CurrentUser
) -> object:
    return service.describe(session, service.get_version(session, user, slug, name, version))


@router.put("/{name}/aliases/{alias}", response_model=VersionOut)
def set_alias(
    slug: str, name: str, alias: str, body: AliasIn, session: SessionDep, user: CurrentUser
) -> object:
    service.set_alias(session, user, slug, name, alias, body.version)
    session.flush()
    return service.describe(session, service.get_version(session, user, slug, name, alias))
