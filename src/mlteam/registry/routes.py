"""HTTP routes of the model registry: models, versions, tags, aliases, stages, model cards and
promotion requests, all under `/projects/{slug}`."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response

from mlteam.registry import cards, promotions, service
from mlteam.registry.schemas import (
    AliasIn,
    CardIn,
    CardOut,
    CardRevisionOut,
    DescriptionIn,
    ModelOut,
    PromotionIn,
    PromotionOut,
    SignOffIn,
    StageIn,
    TagIn,
    VersionIn,
    VersionOut,
    WithdrawIn,
)
from mlteam.server.deps import CurrentUser, PlatformDep, SessionDep

router = APIRouter(prefix="/projects/{slug}", tags=["registry"])
MODEL = "/models/{name}"
VERSION = "/models/{name}/versions/{version}"


@router.get("/models", response_model=list[ModelOut])
def list_models(slug: str, session: SessionDep, user: CurrentUser) -> object:
    return [service.describe_model(session, m) for m in service.list_models(session, user, slug)]


@router.get(MODEL, response_model=ModelOut)
def get_model(slug: str, name: str, session: SessionDep, user: CurrentUser) -> object:
    return service.describe_model(session, service.get_model(session, user, slug, name))


@router.patch(MODEL, response_model=ModelOut)
def update_model(
    slug: str, name: str, body: DescriptionIn, session: SessionDep, user: CurrentUser
) -> object:
    return service.describe_model(
        session, service.update_model(session, user, slug, name, body.description)
    )


@router.put(MODEL + "/tags/{key:path}", response_model=ModelOut)
def set_model_tag(
    slug: str, name: str, key: str, body: TagIn, session: SessionDep, user: CurrentUser
) -> object:
    return service.describe_model(
        session, service.set_model_tag(session, user, slug, name, key, body.value)
    )


@router.delete(MODEL + "/tags/{key:path}", status_code=204)
def delete_model_tag(
    slug: str, name: str, key: str, session: SessionDep, user: CurrentUser
) -> None:
    service.delete_model_tag(session, user, slug, name, key)


@router.post(MODEL + "/versions", response_model=VersionOut, status_code=201)
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


@router.get(MODEL + "/versions", response_model=list[VersionOut])
def list_versions(slug: str, name: str, session: SessionDep, user: CurrentUser) -> object:
    return [service.describe(session, v) for v in service.list_versions(session, user, slug, name)]


@router.get(VERSION, response_model=VersionOut)
def get_version(
    slug: str, name: str, version: str, session: SessionDep, user: CurrentUser
) -> object:
    return service.describe(session, service.get_version(session, user, slug, name, version))


@router.patch(VERSION, response_model=VersionOut)
def update_version(
    slug: str, name: str, version: str, body: DescriptionIn, session: SessionDep, user: CurrentUser
) -> object:
    mv = service.update_version(session, user, slug, name, version, body.description)
    return service.describe(session, mv)


@router.put(VERSION + "/tags/{key:path}", response_model=VersionOut)
def set_version_tag(
    slug: str,
    name: str,
    version: str,
    key: str,
    body: TagIn,
    session: SessionDep,
    user: CurrentUser,
) -> object:
    mv = service.set_version_tag(session, user, slug, name, version, key, body.value)
    return service.describe(session, mv)


@router.delete(VERSION + "/tags/{key:path}", status_code=204)
def delete_version_tag(
    slug: str, name: str, version: str, key: str, session: SessionDep, user: CurrentUser
) -> None:
    service.delete_version_tag(session, user, slug, name, version, key)


@router.post(VERSION + "/stage", response_model=VersionOut)
def transition_stage(
    slug: str, name: str, version: str, body: StageIn, session: SessionDep, user: CurrentUser
) -> object:
    mv = service.transition_stage(
        session, user, slug, name, version, body.stage, body.archive_existing
    )
    return service.describe(session, mv)


@router.put(MODEL + "/aliases/{alias}", response_model=VersionOut)
def set_alias(
    slug: str, name: str, alias: str, body: AliasIn, session: SessionDep, user: CurrentUser
) -> object:
    service.set_alias(session, user, slug, name, alias, body.version)
    session.flush()
    return service.describe(session, service.get_version(session, user, slug, name, alias))


@router.delete(MODEL + "/aliases/{alias}", status_code=204)
def delete_alias(slug: str, name: str, alias: str, session: SessionDep, user: CurrentUser) -> None:
    service.delete_alias(session, user, slug, name, alias)


# -- model cards -------------------------------------------------------------------------------


@router.get(
    VERSION + "/card",
    response_model=CardOut,
    responses={200: {"content": {"text/markdown": {}}}},
)
def get_card(
    slug: str,
    name: str,
    version: str,
    session: SessionDep,
    user: CurrentUser,
    format: Literal["json", "markdown"] = "json",  # noqa: A002 - the query parameter's name
    revision: int | None = None,
) -> object:
    card = cards.get_card(session, user, slug, name, version, revision)
    if format == "markdown":
        return Response(cards.render_markdown(card), media_type="text/markdown; charset=utf-8")
    return card


@router.patch(VERSION + "/card", response_model=CardOut)
def edit_card(
    slug: str, name: str, version: str, body: CardIn, session: SessionDep, user: CurrentUser
) -> object:
    return cards.edit_card(session, user, slug, name, version, body.model_dump(exclude_none=True))


@router.get(VERSION + "/card/revisions", response_model=list[CardRevisionOut])
def card_revisions(
    slug: str, name: str, version: str, session: SessionDep, user: CurrentUser
) -> object:
    return cards.card_revisions(session, user, slug, name, version)


# -- promotion requests ------------------------------------------------------------------------


@router.post("/promotions", response_model=PromotionOut, status_code=201)
def create_promotion(
    slug: str, body: PromotionIn, session: SessionDep, user: CurrentUser
) -> object:
    req = promotions.create_promotion(
        session, user, slug, body.model, body.version, body.rationale, body.target
    )
    return promotions.describe(session, req)


@router.get("/promotions", response_model=list[PromotionOut])
def list_promotions(
    slug: str, session: SessionDep, user: CurrentUser, state: str | None = None
) -> object:
    return [
        promotions.describe(session, r)
        for r in promotions.list_promotions(session, user, slug, state)
    ]


@router.get("/promotions/{number}", response_model=PromotionOut)
def get_promotion(slug: str, number: int, session: SessionDep, user: CurrentUser) -> object:
    return promotions.describe(session, promotions.get_promotion(session, user, slug, number))


@router.post("/promotions/{number}/signoffs", response_model=PromotionOut, status_code=201)
def sign_promotion(
    slug: str, number: int, body: SignOffIn, session: SessionDep, user: CurrentUser
) -> object:
    req = promotions.sign(session, user, slug, number, body.role, body.decision, body.rationale)
    return promotions.describe(session, req)


@router.post("/promotions/{number}/withdraw", response_model=PromotionOut)
def withdraw_promotion(
    slug: str, number: int, body: WithdrawIn, session: SessionDep, user: CurrentUser
) -> object:
    return promotions.describe(
        session, promotions.withdraw(session, user, slug, number, body.rationale)
    )
