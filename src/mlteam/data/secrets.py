"""Source credentials, encrypted at rest with Fernet.

The key is `MLTEAM_SECRET_KEY`, or one generated once into `MLTEAM_HOME/secret.key` (created
exclusively, mode 0600, so two servers starting at once agree on one key). Decrypted values
live only in the worker that reads the source; `scrub` takes them out of any message.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from mlteam.config import Settings
from mlteam.core.errors import InvalidInput


def _key(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = settings.home / "secret.key"
    if not path.exists():
        settings.ensure_home()
        key = Fernet.generate_key()
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
    return path.read_bytes().strip()


class SecretBox:
    """Encrypts and decrypts a source's credentials (a small JSON object)."""

    def __init__(self, settings: Settings) -> None:
        try:
            self._fernet = Fernet(_key(settings))
        except ValueError as err:
            raise InvalidInput(
                "MLTEAM_SECRET_KEY is not a valid Fernet key (32 url-safe base64 bytes)",
                {"field": "MLTEAM_SECRET_KEY"},
            ) from err

    def seal(self, values: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(values).encode()).decode()

    def open(self, token: str | None, what: str) -> dict[str, Any]:
        if not token:
            return {}
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as err:
            raise InvalidInput(
                f"cannot decrypt the credentials of {what}: was MLTEAM_SECRET_KEY changed? "
                "Set them again",
                {"field": "credentials"},
            ) from err


def scrub(text: str, secrets: dict[str, Any]) -> str:
    """`text` with every credential value replaced by ***."""
    for value in secrets.values():
        if isinstance(value, str) and len(value) >= 3:
            text = text.replace(value, "***")
            from urllib.parse import quote

            text = text.replace(quote(value, safe=""), "***")
    return text
