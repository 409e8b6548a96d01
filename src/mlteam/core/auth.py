"""Users and API tokens.

Tokens are 256-bit random strings shown once; only their SHA-256 is stored (a slow hash buys
nothing for a random 256-bit secret and would cost every request). Passwords, for the UI, use
argon2.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import require_admin
from mlteam.core.db import utcnow
from mlteam.core.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from mlteam.core.models import ApiToken, User

TOKEN_PREFIX = "mlt_"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_hasher = PasswordHasher()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class _RecentTokens:
    """Users of tokens seen in the last `TTL` seconds, so a burst of requests (the MLflow
    client sends one per metric) does not look each token up every time: the lookup was a
    fifth of such a request.

    A revocation in this process takes effect at once (`forget`); one made elsewhere (another
    server process, `mlteam` on the host) within `TTL` seconds. The cached users are detached
    snapshots, read-only by convention like every actor.
    """

    TTL = 5.0
    SIZE = 10_000

    def __init__(self) -> None:
        self._users: dict[str, tuple[float, User]] = {}
        self._lock = threading.Lock()

    def get(self, token_hash: str) -> User | None:
        hit = self._users.get(token_hash)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, token_hash: str, user: User) -> None:
        with self._lock:
            if len(self._users) >= self.SIZE:
                self._users.clear()
            self._users[token_hash] = (time.monotonic() + self.TTL, user)

    def forget(self) -> None:
        with self._lock:
            self._users.clear()


_recent = _RecentTokens()


def authenticate(session: Session, token: str | None) -> User:
    """The user a bearer token belongs to, or `Unauthenticated`."""
    if not token:
        raise Unauthenticated("missing API token: send 'Authorization: Bearer <token>'")
    token_hash = hash_token(token)
    cached = _recent.get(token_hash)
    if cached is not None:
        return cached
    # One entity loaded, the conditions in SQL: this runs on every request.
    user = session.scalar(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_hash == token_hash,
            ApiToken.revoked_at.is_(None),
            User.active.is_(True),
        )
    )
    if user is None:
        raise Unauthenticated("invalid or revoked API token")
    # Detached at once: a rollback of this session (a refused request) must not expire the
    # snapshot other requests are reading.
    session.expunge(user)
    _recent.put(token_hash, user)
    return user


def _new_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=hash_token(secret), prefix=secret[:8])
    session.add(row)
    session.flush()
    return row, secret


def create_user(
    session: Session,
    actor: User | None,
    email: str,
    *,
    name: str = "",
    admin: bool = False,
    password: str | None = None,
) -> tuple[User, str]:
    """Create a user and a first token. `actor=None` is the local bootstrap (CLI on the host)."""
    if actor is not None:
        require_admin(actor)
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidInput(f"not an email address: {email!r}", {"field": "email"})
    if session.scalar(select(User.id).where(User.email == email)):
        raise Conflict(f"a user with email {email} already exists", {"field": "email"})
    user = User(
        email=email,
        name=name,
        is_admin=admin,
        password_hash=_hasher.hash(password) if password else None,
    )
    session.add(user)
    session.flush()
    _, secret = _new_token(session, user, "initial")
    audit.record(session, actor, "user.create", f"user:{email}", detail={"admin": admin})
    return user, secret


def list_users(session: Session, actor: User) -> list[User]:
    require_admin(actor)
    return list(session.scalars(select(User).order_by(User.created_at)))


def get_user_by_email(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"no user with email {email}", {"field": "email"})
    return user


def create_token(session: Session, actor: User, name: str = "") -> tuple[ApiToken, str]:
    """A new token for the actor themself."""
    row, secret = _new_token(session, actor, name)
    audit.record(session, actor, "token.create", f"token:{row.prefix}", detail={"name": name})
    return row, secret


def bootstrap_token(session: Session, email: str, name: str = "cli") -> str:
    """A fresh token for an existing user, issued on the host itself (no caller token)."""
    user = get_user_by_email(session, email)
    row, secret = _new_token(session, user, name)
    audit.record(session, None, "token.create", f"token:{row.prefix}", detail={"user": email})
    return secret


def list_tokens(session: Session, actor: User) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == actor.id).order_by(ApiToken.created_at)
        )
    )


def revoke_token(session: Session, actor: User, token_id: str) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or (row.user_id != actor.id and not actor.is_admin):
        raise NotFound(f"token {token_id} not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, actor, "token.revoke", f"token:{row.prefix}")
        _recent.forget()
    return row
