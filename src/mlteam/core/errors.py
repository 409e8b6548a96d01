"""The one error tree, shared by server and SDK.

    MlteamError                  500 internal         (a bug: never raised on purpose)
    ├── InvalidInput             400 invalid_input    (the caller sent something wrong)
    ├── Unauthenticated          401 unauthenticated  (no token, or a bad one)
    ├── Forbidden                403 forbidden        (a member without the role)
    ├── NotFound                 404 not_found        (absent, or in a project you are not in)
    ├── Conflict                 409 conflict         (already exists, wrong state)
    ├── PayloadTooLarge          413 payload_too_large
    ├── UserCodeError            422 user_code_error  (user-supplied data or code failed)
    └── Unavailable              503 unavailable      (the database is gone for a moment)

The server turns one into `{"error": {"code", "message", "details"}}` with the status of
`STATUS`; the SDK turns that JSON back into the same class. This module imports nothing heavy
so the SDK can use it on its own.
"""

from __future__ import annotations

from typing import Any


class MlteamError(Exception):
    code = "internal"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidInput(MlteamError):
    code = "invalid_input"


class Unauthenticated(MlteamError):
    code = "unauthenticated"


class Forbidden(MlteamError):
    code = "forbidden"


class NotFound(MlteamError):
    code = "not_found"


class Conflict(MlteamError):
    code = "conflict"


class PayloadTooLarge(MlteamError):
    code = "payload_too_large"


class UserCodeError(MlteamError):
    code = "user_code_error"


class Unavailable(MlteamError):
    code = "unavailable"


ERRORS: dict[str, type[MlteamError]] = {
    cls.code: cls
    for cls in (
        MlteamError,
        InvalidInput,
        Unauthenticated,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        UserCodeError,
        Unavailable,
    )
}

STATUS: dict[str, int] = {
    "internal": 500,
    "invalid_input": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "payload_too_large": 413,
    "user_code_error": 422,
    "unavailable": 503,
}


def from_payload(status: int, payload: Any) -> MlteamError:
    """Rebuild the server's error on the client side."""
    body = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(body, dict):
        return MlteamError(f"HTTP {status}: {payload!r}"[:500])
    cls = ERRORS.get(str(body.get("code")), MlteamError)
    return cls(str(body.get("message", "")), body.get("details"))
