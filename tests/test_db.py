"""The embedded SQLite store: its write-ahead log is checkpointed off the request path."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import text

from mlteam.core.db import Database


def _write_batches(db: Database, n: int, pause: float) -> None:
    rows = [{"k": f"k{i}", "v": "x" * 200} for i in range(500)]
    for _ in range(n):
        with db.session() as s:
            s.execute(text("INSERT INTO t (k, v) VALUES (:k, :v)"), rows)
        time.sleep(pause)


def _wal_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_the_server_checkpoints_on_its_own_thread_and_the_log_stays_small(tmp_path) -> None:
    path = tmp_path / "own.db"
    db = Database(f"sqlite:///{path}", own_checkpoints=True)
    with db.session() as s:
        s.execute(text("CREATE TABLE t (k TEXT, v TEXT)"))
        assert s.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 0  # not in commits
    db.checkpointer.interval = 0.05
    db.checkpointer.start()
    try:
        _write_batches(db, 30, pause=0.12)
    finally:
        db.checkpointer.stop()
    with_thread = _wal_size(path)

    # The same writes with nobody checkpointing: the log holds all of them.
    other = tmp_path / "none.db"
    bare = Database(f"sqlite:///{other}", own_checkpoints=True)
    with bare.session() as s:
        s.execute(text("CREATE TABLE t (k TEXT, v TEXT)"))
    _write_batches(bare, 30, pause=0)
    without = _wal_size(other)
    assert without > 4 * with_thread, (with_thread, without)
    with db.session() as s:  # and nothing was lost on the way
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 30 * 500
    db.dispose()
    bare.dispose()


def test_other_processes_keep_sqlites_own_checkpoints(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    assert db.checkpointer is None
    with db.session() as s:
        assert s.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 1000
    db.dispose()
    assert os.path.exists(tmp_path / "x.db")
