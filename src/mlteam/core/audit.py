"""The audit log: one event per mutation, written in the mutation's own transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlteam.core.models import AuditEvent, User


def record(
    session: Session,
    actor: User | None,
    action: str,
    target: str,
    *,
    project_id: str | None = None,
    detail: dict[str, Any] | None = None,
    rationale: str | None = None,
) -> AuditEvent:
    """Add an event to the caller's transaction: it commits or rolls back with the change."""
    event = AuditEvent(
        actor_id=actor.id if actor else None,
        actor_email=actor.email if actor else "system",
        project_id=project_id,
        action=action,
        target=target,
        detail=detail or {},
        rationale=rationale,
    )
    session.add(event)
    return event


def events(
    session: Session,
    project_id: str,
    *,
    action: str | None = None,
    before: datetime | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Newest first. Access is checked by the caller (projects.service)."""
    q = select(AuditEvent).where(AuditEvent.project_id == project_id)
    if action:
        q = q.where(AuditEvent.action.startswith(action))
    if before:
        q = q.where(AuditEvent.at < before)
    q = q.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    return list(session.scalars(q))
