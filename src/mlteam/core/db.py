"""The metadata store: engine, declarative base and the unit of work.

SQLite (the embedded default) runs in WAL mode with foreign keys on, so it enforces what
PostgreSQL enforces. `Database.session()` is the unit of work every service call runs in:
commit on success, roll back on error, database outages become `Unavailable`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, String, create_engine, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from mlteam.core.errors import MlteamError, Unavailable

log = logging.getLogger(__name__)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """Opaque 32-hex ids: unguessable across projects, and what MLflow clients expect."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class IdMixin:
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    # Read through the OS page cache, shared by every connection, instead of copying pages
    # into each connection's small private cache: halves the time of searches over runs.
    cur.execute("PRAGMA mmap_size=268435456")
    cur.close()


def _no_autocheckpoint(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA wal_autocheckpoint=0")
    cur.close()


class Checkpointer:
    """Copies SQLite's write-ahead log back into the database file on a thread of its own.

    By default the commit that finds the log past 1,000 pages does that copy itself, with an
    fsync: a batch of metrics then waited 24 ms for its commit instead of 7 (measured). The
    server's connections leave it to this thread, which checkpoints every `interval` seconds
    (PASSIVE: it never blocks a reader or a writer) and once more when stopped. Other
    processes (job workers, the CLI) keep SQLite's default and checkpoint as they go.
    """

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def checkpoint(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except exc.SQLAlchemyError as err:  # a busy database: the next round catches up
            log.warning("WAL checkpoint skipped: %s", err)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.checkpoint()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.checkpoint()


def make_engine(url: str, *, own_checkpoints: bool = False) -> Engine:
    """The engine for `url`; with `own_checkpoints`, SQLite commits never checkpoint (see
    `Checkpointer`)."""
    if url.startswith("sqlite"):
        # No pre-ping: a SQLite file does not drop connections, and the ping is a query on
        # every checkout (a few per cent of a small request).
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        if own_checkpoints:
            event.listen(engine, "connect", _no_autocheckpoint)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    """Owns the engine; hands out units of work."""

    def __init__(self, url: str, *, own_checkpoints: bool = False) -> None:
        """`own_checkpoints`: a long-running process (the server) that runs a `Checkpointer`
        instead of checkpointing SQLite's log inside commits."""
        self.url = url
        self.engine = make_engine(url, own_checkpoints=own_checkpoints)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.checkpointer = (
            Checkpointer(self.engine) if own_checkpoints and url.startswith("sqlite") else None
        )

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except exc.OperationalError as err:
            session.rollback()
            if _is_outage(err):
                raise Unavailable("the metadata store is unavailable; retry shortly") from err
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _is_outage(err: exc.OperationalError) -> bool:
    text = str(err.orig).lower()
    return any(s in text for s in ("connection", "could not connect", "locked", "terminating"))


def upsert(session: Session, table: Any) -> Any:
    """An INSERT of this session's backend, which has `on_conflict_do_update/do_nothing`.

    SQLite and PostgreSQL spell upserts the same way in SQLAlchemy but through their own
    dialect's `insert`; the generic one has no ON CONFLICT.
    """
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported backends reach here
        raise MlteamError(f"no upsert for the {name} backend")
    return insert(table)


def append_rows(
    session: Session, table: Any, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert many rows (tuples in the order of `columns`) in the session's transaction, fast.

    PostgreSQL gets COPY (1,000 metric points: ~7 ms, against ~35 ms as an executemany);
    SQLite its driver's executemany, run in C, with no per-row work in SQLAlchemy (which was
    a third of a 1,000-metric batch). For append-only tables: COPY has no ON CONFLICT.
    `columns` are the table's own column names, never input.
    """
    if not rows:
        return
    names = ", ".join(f'"{table.c[n].name}"' for n in columns)
    dbapi = session.connection().connection.dbapi_connection
    if session.get_bind().dialect.name != "postgresql":
        marks = ", ".join("?" for _ in columns)
        cur = dbapi.cursor()
        try:
            cur.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)
        finally:
            cur.close()
        return
    with dbapi.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def insert_many(session: Session, table: Any, rows: list[dict[str, Any]]) -> tuple[Any, Any]:
    """`upsert(session, table)` for these rows (all with the same keys) and the parameters
    to execute it with: `session.execute(stmt, params)`; ON CONFLICT may be added between.

    PostgreSQL gets one INSERT ... SELECT over unnest(array, ...), one bind per column
    however many rows (an executemany of 1,000 rows costs it three times as much); SQLite
    gets an executemany, which its driver runs in C.
    """
    stmt = upsert(session, table)
    if session.get_bind().dialect.name != "postgresql":
        return stmt, rows
    from sqlalchemy import bindparam, func, select
    from sqlalchemy.dialects.postgresql import ARRAY

    names = list(rows[0])
    arrays = [
        bindparam(f"rows_{n}", [r[n] for r in rows], type_=ARRAY(table.c[n].type)) for n in names
    ]
    unnested = func.unnest(*arrays).table_valued(*names).render_derived()
    return stmt.from_select(names, select(*[unnested.c[n] for n in names])), None


def integrity_to(err: exc.IntegrityError, error: MlteamError) -> MlteamError:
    """Name the conflict a unique constraint found, instead of leaking SQL."""
    error.__cause__ = err
    return error
