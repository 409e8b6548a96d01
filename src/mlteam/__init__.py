"""mlteam: a self-hosted, self-service ML platform.

The public surface is the SDK client and its errors; everything else is the platform's own.
"""

__version__ = "0.1.0"

from mlteam.client import Client  # noqa: E402
from mlteam.core.errors import (  # noqa: E402
    Conflict,
    Forbidden,
    InvalidInput,
    MlteamError,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    Unavailable,
    UserCodeError,
)

__all__ = [
    "Client",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "MlteamError",
    "NotFound",
    "PayloadTooLarge",
    "Unauthenticated",
    "Unavailable",
    "UserCodeError",
    "__version__",
]
