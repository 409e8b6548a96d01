"""The model registry: versions made from a run's model artifact, with lineage, aliases, tags.

A version points at its run's `model/` artifact folder, which is immutable once the run has
finished; its signature and metrics are copied in so serving and monitoring need no run.

Aliases are the one source of truth for where a version stands. MLflow's legacy stages are
derived from them for old clients (`stage_of`), and a stage transition moves the matching alias
(`transition_stage`). Protected aliases (`PROTECTED_ALIASES`) move only through an approved
promotion request (registry/promotions.py), never by `set_alias` or a stage transition.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import Perm, require
from mlteam.core.artifacts import ArtifactStore
from mlteam.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mlteam.core.models import User
from mlteam.data import service as data
from mlteam.projects import service as projects
from mlteam.registry.models import (
    ModelAlias,
    ModelTag,
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
)
from mlteam.tracking import service as tracking

ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
# Aliases that only an approved promotion request may move (compared case-insensitively, so
# `PRODUCTION` is no way around it). A module constant for now; later a project setting.
PROTECTED_ALIASES = frozenset({"production", "champion"})
# MLflow's legacy stages and the alias each one stands for.
STAGES = ("None", "Staging", "Production", "Archived")
STAGE_ALIASES = {"Production": "production", "Staging": "staging"}
# Tag keys as MLflow allows them: letters, digits, `_ - . / : ` and spaces.
TAG_KEY = re.compile(r"^[A-Za-z0-9_\-./: ]{1,250}$")
MAX_TAG_VALUE = 5000
MAX_DESCRIPTION = 10_000


def _model(session: Session, project_id: str, name: str) -> RegisteredModel | None:
    return session.scalar(
        select(RegisteredModel).where(
            RegisteredModel.project_id == project_id, RegisteredModel.name == name
        )
    )


def register_version(
    session: Session,
    actor: User,
    store: ArtifactStore,
    slug: str,
    name: str,
    run_id: str,
    description: str = "",
) -> ModelVersion:
    """Register the model a finished run logged under `model/` as the next version of `name`."""
    project = projects.resolve(session, actor, slug, Perm.model_write)
    run = tracking.get_run(session, actor, run_id)
    if run.project_id != project.id:
        raise NotFound(f"run {run_id} not found")
    if run.status != "FINISHED":
        raise Conflict(f"run {run_id} is {run.status}; only finished runs can be registered")
    key = tracking.artifact_key(run, "model")
    try:
        meta = json.loads(store.read_bytes(f"{key}/mlteam-model.json"))
    except NotFound as err:
        raise InvalidInput(
            f"run {run_id} logged no model under model/", {"field": "run_id"}
        ) from err
    return _add_version(
        session,
        actor,
        project.id,
        name,
        key=key,
        fmt=meta.get("format", "unknown"),
        signature=meta.get("signature", {}),
        run=run,
        lineage={"candidate": meta.get("candidate")},
        description=description,
    )


def register_artifacts(
    session: Session,
    actor: User,
    slug: str,
    name: str,
    *,
    key: str,
    fmt: str,
    signature: dict[str, Any] | None = None,
    run_id: str | None = None,
    lineage: dict[str, Any] | None = None,
    description: str = "",
    tags: dict[str, str] | None = None,
) -> ModelVersion:
    """Register model files already in the store (an MLflow logged model, say) as a version.

    The caller has checked the key belongs to the project and is frozen (a finished run's or a
    finalized logged model's artifacts).
    """
    project = projects.resolve(session, actor, slug, Perm.model_write)
    run = None
    if run_id:
        run = tracking.get_run(session, actor, run_id)
        if run.project_id != project.id:
            raise NotFound(f"run {run_id} not found")
    mv = _add_version(
        session,
        actor,
        project.id,
        name,
        key=key,
        fmt=fmt,
        signature=signature or {},
        run=run,
        lineage=lineage or {},
        description=description,
    )
    for k, v in (tags or {}).items():
        _check_tag(k, v)
        session.add(ModelVersionTag(version_id=mv.id, key=k, value=v))
    return mv


def create_model(
    session: Session,
    actor: User,
    slug: str,
    name: str,
    description: str = "",
    tags: dict[str, str] | None = None,
) -> RegisteredModel:
    """Create an empty registered model (versions come later); 409 if the name is taken."""
    project = projects.resolve(session, actor, slug, Perm.model_write)
    data.check_name(name, "model")
    if _model(session, project.id, name) is not None:
        raise Conflict(f"registered model {name!r} already exists", {"field": "name"})
    model = _get_or_create_model(session, actor, project.id, name)
    model.description = _check_description(description)
    for k, v in (tags or {}).items():
        _check_tag(k, v)
        session.add(ModelTag(model_id=model.id, key=k, value=v))
    return model


def _get_or_create_model(
    session: Session, actor: User, project_id: str, name: str
) -> RegisteredModel:
    model = _model(session, project_id, name)
    if model is None:
        model = RegisteredModel(project_id=project_id, name=name, created_by=actor.id)
        session.add(model)
        session.flush()
        audit.record(session, actor, "model.create", f"model:{name}", project_id=project_id)
    return model


def _add_version(
    session: Session,
    actor: User,
    project_id: str,
    name: str,
    *,
    key: str,
    fmt: str,
    signature: dict[str, Any],
    run: Any,
    lineage: dict[str, Any],
    description: str,
) -> ModelVersion:
    """The next version of `name`, with the run's metrics and data as lineage."""
    data.check_name(name, "model")
    model = _get_or_create_model(session, actor, project_id, name)
    number = (
        session.scalar(
            select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)
        )
        or 0
    ) + 1
    inputs = []
    for dv_id in run.inputs if run is not None else []:
        dv = data.version_by_id(session, actor, dv_id)
        inputs.append({"id": dv.id, "dataset": data.dataset_name(session, dv), "n": dv.n})
    mv = ModelVersion(
        model_id=model.id,
        project_id=project_id,
        version=number,
        run_id=run.id if run is not None else None,
        artifact_key=key,
        format=fmt,
        signature=signature,
        metrics=tracking.latest_metrics(session, run) if run is not None else {},
        lineage={
            "run_id": run.id if run is not None else None,
            "dataset_versions": inputs,
            **lineage,
        },
        description=_check_description(description),
        created_by=actor.id,
    )
    session.add(mv)
    session.flush()
    audit.record(
        session,
        actor,
        "model.version.create",
        f"model:{name}/{number}",
        project_id=project_id,
        detail={"run_id": mv.run_id, "format": fmt},
    )
    return mv


def list_models(session: Session, actor: User, slug: str) -> list[RegisteredModel]:
    project = projects.resolve(session, actor, slug, Perm.model_read)
    return list(
        session.scalars(
            select(RegisteredModel)
            .where(RegisteredModel.project_id == project.id)
            .order_by(RegisteredModel.name)
        )
    )


def get_model(session: Session, actor: User, slug: str, name: str) -> RegisteredModel:
    project = projects.resolve(session, actor, slug, Perm.model_read)
    model = _model(session, project.id, name)
    if model is None:
        raise NotFound(f"model {name} not found")
    return model


def list_versions(session: Session, actor: User, slug: str, name: str) -> list[ModelVersion]:
    model = get_model(session, actor, slug, name)
    return list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.model_id == model.id)
            .order_by(ModelVersion.version)
        )
    )


def get_version(
    session: Session, actor: User, slug: str, name: str, version: int | str
) -> ModelVersion:
    """A version by number, or by alias (`champion`, `production`, ...)."""
    model = get_model(session, actor, slug, name)
    if str(version).isdigit():
        mv = session.scalar(
            select(ModelVersion).where(
                ModelVersion.model_id == model.id, ModelVersion.version == int(version)
            )
        )
    else:
        alias = session.get(ModelAlias, (model.id, str(version)))
        mv = session.get(ModelVersion, alias.version_id) if alias else None
    if mv is None:
        raise NotFound(f"model {name} has no version {version}")
    return mv


def version_by_id(
    session: Session, actor: User, version_id: str, perm: Perm = Perm.model_read
) -> ModelVersion:
    mv = session.get(ModelVersion, version_id)
    if mv is None:
        raise NotFound(f"model version {version_id} not found")
    require(session, actor, mv.project_id, perm, what=f"model version {version_id}")
    return mv


def check_alias(alias: str) -> str:
    """The alias if its name is valid, else InvalidInput."""
    if not isinstance(alias, str) or not ALIAS.match(alias):
        raise InvalidInput(
            f"invalid alias {alias!r}: a letter, then up to 127 letters, digits, '_' or '-'",
            {"field": "alias"},
        )
    return alias


def is_protected(alias: str) -> bool:
    """Does only an approved promotion request move this alias?"""
    return alias.lower() in PROTECTED_ALIASES


def _protected(alias: str, slug: str) -> Forbidden:
    return Forbidden(
        f"alias {alias!r} is protected: it moves only through an approved promotion request "
        f"(`mlteam promotions request {slug} ...`, POST /api/v1/projects/{slug}/promotions) "
        "signed off by the project's required roles",
        {"alias": alias, "protected": sorted(PROTECTED_ALIASES)},
    )


def point_alias(
    session: Session, mv: ModelVersion, alias: str
) -> tuple[ModelAlias, ModelVersion | None]:
    """Point `alias` at `mv`: the alias row, and the version it left (if any).

    No access check and no audit: the callers in this capability (`set_alias`,
    `transition_stage`, an approved promotion) have done both. A version that loses
    `production` is marked archived, which `stage_of` reports as `Archived`.
    """
    row = session.get(ModelAlias, (mv.model_id, alias))
    previous = None
    if row is None:
        row = ModelAlias(model_id=mv.model_id, alias=alias, version_id=mv.id)
        session.add(row)
    elif row.version_id != mv.id:
        previous = session.get(ModelVersion, row.version_id)
        row.version_id = mv.id
    if alias == STAGE_ALIASES["Production"] and previous is not None:
        previous.archived = True
    session.flush()
    return row, previous


def _drop_alias(session: Session, model_id: str, alias: str) -> ModelVersion | None:
    """Remove `alias`; the version that held it (None if it was not set)."""
    row = session.get(ModelAlias, (model_id, alias))
    if row is None:
        return None
    held = session.get(ModelVersion, row.version_id)
    session.delete(row)
    if alias == STAGE_ALIASES["Production"] and held is not None:
        held.archived = True
    session.flush()
    return held


def _require_unprotect(session: Session, actor: User, project_id: str, alias: str) -> None:
    """Taking a protected alias off a version (retiring it) is an owner's call."""
    try:
        require(session, actor, project_id, Perm.project_manage)
    except Forbidden as err:
        raise Forbidden(
            f"alias {alias!r} is protected: only an owner may remove it; to replace the "
            "version it points at, open a promotion request",
            {"alias": alias},
        ) from err


def set_alias(
    session: Session, actor: User, slug: str, name: str, alias: str, version: int | str
) -> ModelAlias:
    """Point `alias` at a version directly (model_write). Protected aliases refuse."""
    check_alias(alias)
    project = projects.resolve(session, actor, slug, Perm.model_write)
    mv = get_version(session, actor, slug, name, version)
    if is_protected(alias):
        raise _protected(alias, slug)
    row, previous = point_alias(session, mv, alias)
    audit.record(
        session,
        actor,
        "model.alias.set",
        f"model:{name}@{alias}",
        project_id=project.id,
        detail={"version": mv.version, "previous": previous.version if previous else None},
    )
    return row


def delete_alias(session: Session, actor: User, slug: str, name: str, alias: str) -> None:
    """Remove an alias (model_write; a protected one only by an owner)."""
    project = projects.resolve(session, actor, slug, Perm.model_write)
    model = get_model(session, actor, slug, name)
    row = session.get(ModelAlias, (model.id, alias))
    if row is None:
        raise NotFound(f"model {name} has no alias {alias}")
    if is_protected(alias):
        _require_unprotect(session, actor, project.id, alias)
    held = _drop_alias(session, model.id, alias)
    audit.record(
        session,
        actor,
        "model.alias.delete",
        f"model:{name}@{alias}",
        project_id=project.id,
        detail={"version": held.version if held else None},
    )


def aliases_of(session: Session, mv: ModelVersion) -> list[str]:
    """The aliases pointing at a version, sorted."""
    return sorted(session.scalars(select(ModelAlias.alias).where(ModelAlias.version_id == mv.id)))


def model_aliases(session: Session, model: RegisteredModel) -> dict[str, int]:
    """{alias: version number} of a model."""
    rows = session.execute(
        select(ModelAlias.alias, ModelVersion.version)
        .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)
        .where(ModelAlias.model_id == model.id)
        .order_by(ModelAlias.alias)
    )
    return {alias: version for alias, version in rows}


# -- stages (MLflow's legacy view of aliases) ----------------------------------------------------


def stage_of(session: Session, mv: ModelVersion, aliases: list[str] | None = None) -> str:
    """`Production` if the version holds alias `production`, `Staging` if it holds `staging`,
    `Archived` if it once held production (or was archived) and no longer does, else `None`."""
    held = aliases_of(session, mv) if aliases is None else aliases
    if STAGE_ALIASES["Production"] in held:
        return "Production"
    if STAGE_ALIASES["Staging"] in held:
        return "Staging"
    return "Archived" if mv.archived else "None"


def check_stage(stage: str) -> str:
    """An MLflow stage name in its canonical spelling (any case accepted)."""
    for s in STAGES:
        if isinstance(stage, str) and stage.lower() == s.lower():
            return s
    raise InvalidInput(f"stage must be one of {', '.join(STAGES)}", {"field": "stage"})


def transition_stage(
    session: Session,
    actor: User,
    slug: str,
    name: str,
    version: int | str,
    stage: str,
    archive_existing: bool = False,
) -> ModelVersion:
    """Move a version to an MLflow stage by moving the alias that stage stands for.

    `Production` is the protected `production` alias: refused, it moves only through a
    promotion request. `Staging` points `staging` here (`archive_existing` archives the version
    that held it). `Archived` and `None` take `staging` (and, for an owner, `production`) off
    the version; `Archived` marks it archived, `None` clears that mark.
    """
    target = check_stage(stage)
    project = projects.resolve(session, actor, slug, Perm.model_write)
    mv = get_version(session, actor, slug, name, version)
    if target == "Production":
        raise _protected(STAGE_ALIASES["Production"], slug)
    held = aliases_of(session, mv)
    before = stage_of(session, mv, held)
    if STAGE_ALIASES["Production"] in held:
        # Leaving Production retires the model: the protected alias comes off the version.
        _require_unprotect(session, actor, project.id, STAGE_ALIASES["Production"])
        _drop_alias(session, mv.model_id, STAGE_ALIASES["Production"])
    archived_other = None
    if target == "Staging":
        _, previous = point_alias(session, mv, STAGE_ALIASES["Staging"])
        if archive_existing and previous is not None:
            previous.archived = True
            archived_other = previous.version
    else:
        if STAGE_ALIASES["Staging"] in held:
            _drop_alias(session, mv.model_id, STAGE_ALIASES["Staging"])
        mv.archived = target == "Archived"
    session.flush()
    audit.record(
        session,
        actor,
        "model.version.stage",
        f"model:{name}/{mv.version}",
        project_id=project.id,
        detail={"from": before, "to": target, "archived_existing": archived_other},
    )
    return mv


# -- tags and descriptions -------------------------------------------------------------------


def _check_tag(key: str, value: str | None = None) -> None:
    if not isinstance(key, str) or not TAG_KEY.match(key):
        raise InvalidInput(
            f"invalid tag key {key!r}: 1-250 letters, digits, spaces or '_-./:'",
            {"field": "key"},
        )
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidInput(f"invalid tag key {key!r}: empty, '.' or '..' part", {"field": "key"})
    if value is not None and len(value) > MAX_TAG_VALUE:
        raise InvalidInput(
            f"tag value is longer than {MAX_TAG_VALUE} characters", {"field": "value"}
        )


def _check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(
            f"description is longer than {MAX_DESCRIPTION} characters", {"field": "description"}
        )
    return description


def model_tags(session: Session, model: RegisteredModel) -> dict[str, str]:
    """{key: value} of a registered model."""
    rows = session.scalars(select(ModelTag).where(ModelTag.model_id == model.id))
    return {t.key: t.value for t in sorted(rows, key=lambda t: t.key)}


def version_tags(session: Session, mv: ModelVersion) -> dict[str, str]:
    """{key: value} of a model version."""
    rows = session.scalars(select(ModelVersionTag).where(ModelVersionTag.version_id == mv.id))
    return {t.key: t.value for t in sorted(rows, key=lambda t: t.key)}


def _put_tag(session: Session, tag: ModelTag | ModelVersionTag) -> None:
    """Insert the tag, or overwrite the value of the one with the same owner and key."""
    session.merge(tag)
    session.flush()


def set_model_tag(
    session: Session, actor: User, slug: str, name: str, key: str, value: str
) -> RegisteredModel:
    """Set (or overwrite) a tag of a registered model."""
    _check_tag(key, value)
    project = projects.resolve(session, actor, slug, Perm.model_write)
    model = get_model(session, actor, slug, name)
    _put_tag(session, ModelTag(model_id=model.id, key=key, value=value))
    audit.record(
        session,
        actor,
        "model.tag.set",
        f"model:{name}",
        project_id=project.id,
        detail={"key": key, "value": value[:200]},
    )
    return model


def delete_model_tag(session: Session, actor: User, slug: str, name: str, key: str) -> None:
    """Remove a tag of a registered model (NotFound if it has none)."""
    project = projects.resolve(session, actor, slug, Perm.model_write)
    model = get_model(session, actor, slug, name)
    row = session.get(ModelTag, (model.id, key))
    if row is None:
        raise NotFound(f"model {name} has no tag {key!r}")
    session.delete(row)
    audit.record(
        session,
        actor,
        "model.tag.delete",
        f"model:{name}",
        project_id=project.id,
        detail={"key": key},
    )


def set_version_tag(
    session: Session,
    actor: User,
    slug: str,
    name: str,
    version: int | str,
    key: str,
    value: str,
) -> ModelVersion:
    """Set (or overwrite) a tag of a model version."""
    _check_tag(key, value)
    project = projects.resolve(session, actor, slug, Perm.model_write)
    mv = get_version(session, actor, slug, name, version)
    _put_tag(session, ModelVersionTag(version_id=mv.id, key=key, value=value))
    audit.record(
        session,
        actor,
        "model.version.tag.set",
        f"model:{name}/{mv.version}",
        project_id=project.id,
        detail={"key": key, "value": value[:200]},
    )
    return mv


def delete_version_tag(
    session: Session, actor: User, slug: str, name: str, version: int | str, key: str
) -> None:
    """Remove a tag of a model version (NotFound if it has none)."""
    project = projects.resolve(session, actor, slug, Perm.model_write)
    mv = get_version(session, actor, slug, name, version)
    row = session.get(ModelVersionTag, (mv.id, key))
    if row is None:
        raise NotFound(f"model {name} version {mv.version} has no tag {key!r}")
    session.delete(row)
    audit.record(
        session,
        actor,
        "model.version.tag.delete",
        f"model:{name}/{mv.version}",
        project_id=project.id,
        detail={"key": key},
    )


def update_model(
    session: Session, actor: User, slug: str, name: str, description: str
) -> RegisteredModel:
    """Replace a registered model's description."""
    _check_description(description)
    project = projects.resolve(session, actor, slug, Perm.model_write)
    model = get_model(session, actor, slug, name)
    model.description = description
    audit.record(
        session,
        actor,
        "model.update",
        f"model:{name}",
        project_id=project.id,
        detail={"changed": ["description"]},
    )
    return model


def update_version(
    session: Session, actor: User, slug: str, name: str, version: int | str, description: str
) -> ModelVersion:
    """Replace a model version's description."""
    _check_description(description)
    project = projects.resolve(session, actor, slug, Perm.model_write)
    mv = get_version(session, actor, slug, name, version)
    mv.description = description
    audit.record(
        session,
        actor,
        "model.version.update",
        f"model:{name}/{mv.version}",
        project_id=project.id,
        detail={"changed": ["description"]},
    )
    return mv


# -- shapes ----------------------------------------------------------------------------------


def model_name(session: Session, mv: ModelVersion) -> str:
    model = session.get(RegisteredModel, mv.model_id)
    return model.name if model else ""


def describe(session: Session, mv: ModelVersion) -> dict[str, Any]:
    """A version as the API shows it, with aliases, derived stage and tags."""
    aliases = aliases_of(session, mv)
    return {
        "id": mv.id,
        "model": model_name(session, mv),
        "version": mv.version,
        "run_id": mv.run_id,
        "format": mv.format,
        "signature": mv.signature,
        "metrics": mv.metrics,
        "lineage": mv.lineage,
        "description": mv.description,
        "status": mv.status,
        "aliases": aliases,
        "stage": stage_of(session, mv, aliases),
        "tags": version_tags(session, mv),
        "evaluations": evaluations_of(session, mv),
        "created_at": mv.created_at,
    }


def evaluations_of(session: Session, mv: ModelVersion) -> list[dict[str, Any]]:
    """The version's evaluations in brief, newest first, linking their reports."""
    from mlteam.evaluation import service as evaluation  # it builds on the registry

    return evaluation.of_version(session, mv)


def describe_model(session: Session, model: RegisteredModel) -> dict[str, Any]:
    """A registered model as the API shows it, with tags and its aliases."""
    latest = session.scalar(
        select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)
    )
    return {
        "id": model.id,
        "name": model.name,
        "description": model.description,
        "created_at": model.created_at,
        "tags": model_tags(session, model),
        "aliases": model_aliases(session, model),
        "latest_version": latest,
    }
