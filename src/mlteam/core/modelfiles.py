"""Model files in safe formats only.

scikit-learn models are saved with skops and loaded back only when every type in the file is
on the allow-list: loading a model never runs arbitrary code (pickle would).
"""

from __future__ import annotations

from typing import Any

import skops.io as sio

from mlteam.core.errors import InvalidInput

SAFE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.", "lightgbm.")


def dump_sklearn(model: Any, path: str) -> None:
    sio.dump(model, path)


def load_sklearn(data: bytes) -> Any:
    untrusted = sio.get_untrusted_types(data=data)
    unsafe = [t for t in untrusted if not t.startswith(SAFE_PREFIXES)]
    if unsafe:
        raise InvalidInput(
            f"model file holds types outside the allow-list: {', '.join(sorted(unsafe)[:5])}",
            {"types": sorted(unsafe)},
        )
    return sio.loads(data, trusted=untrusted)
