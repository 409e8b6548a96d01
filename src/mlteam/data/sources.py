"""Sources: where a pipeline's raw data comes from.

Three kinds:
- `dataset`: a version of a dataset in the project (an uploaded file): `{"dataset", "version"}`.
- `uri`: a file at an fsspec URI, local (under `MLTEAM_SOURCE_ROOTS`) or `s3://`, `gs://`,
  `az://`: `{"uri", "format", "options"}`; s3 keys go in the credentials.
- `sql`: a table or query of a database by SQLAlchemy URL: `{"url", "table" | "query"}`; a
  password in the URL is moved into the credentials.

Credentials are sealed with `SecretBox` and never leave the service: `describe` says only
whether a source has them, and every message about a read has them scrubbed out.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.orm import Session

from mlteam.config import Settings
from mlteam.core import audit
from mlteam.core.access import Perm
from mlteam.core.artifacts import ArtifactStore
from mlteam.core.errors import Conflict, InvalidInput, MlteamError, NotFound, UserCodeError
from mlteam.core.models import User
from mlteam.data import service as data
from mlteam.data.pipeline_models import Source
from mlteam.data.secrets import SecretBox, scrub
from mlteam.projects import service as projects

KINDS = ("dataset", "uri", "sql")
FILE_FORMATS = ("parquet", "csv", "jsonl")
REMOTE = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")
TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
SECRETISH = re.compile(r"key|secret|token|password|credential", re.IGNORECASE)


def _bad(message: str, field: str) -> InvalidInput:
    return InvalidInput(message, {"field": field})


def _file_format(uri: str, fmt: str | None) -> str:
    if fmt:
        fmt = fmt.lower()
    else:
        lower = uri.lower()
        if lower.endswith((".parquet", ".pq")):
            fmt = "parquet"
        elif lower.endswith(".csv"):
            fmt = "csv"
        elif lower.endswith((".jsonl", ".ndjson", ".json")):
            fmt = "jsonl"
    if fmt not in FILE_FORMATS:
        raise _bad(
            f"cannot tell the format of {uri!r}: set format to one of {FILE_FORMATS}", "format"
        )
    return fmt


def _local_path(settings: Settings, uri: str) -> str:
    """The real path of a local URI, refused unless it lies under a source root."""
    path = uri.removeprefix("file://")
    if not os.path.isabs(path):
        raise _bad(f"a local source path must be absolute: {uri!r}", "config.uri")
    real = os.path.realpath(path)
    for root in settings.source_root_paths:
        root_real = os.path.realpath(root)
        if real == root_real or real.startswith(root_real.rstrip("/") + "/"):
            return real
    roots = ", ".join(str(r) for r in settings.source_root_paths)
    raise _bad(
        f"local sources must lie under the source roots ({roots}; MLTEAM_SOURCE_ROOTS)",
        "config.uri",
    )


_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433}
_LOOPBACK = {None, "", "localhost", "127.0.0.1", "::1"}


def _same_database(url: str, own_url: str) -> bool:
    """Whether `url` names the platform's own database: the same SQLite file, or the same
    database on the same server (loopback spelled any way, the dialect's port by default)."""
    from sqlalchemy.engine import make_url

    a, b = make_url(url), make_url(own_url)
    kind = a.get_backend_name()
    if kind != b.get_backend_name():
        return False
    if kind == "sqlite":
        return bool(a.database and b.database) and os.path.realpath(
            a.database or ""
        ) == os.path.realpath(b.database or "")

    def server(u: Any) -> tuple[str | None, int | None]:
        host = "localhost" if u.host in _LOOPBACK else u.host.lower()
        return host, u.port or _DEFAULT_PORTS.get(kind)

    return server(a) == server(b) and a.database == b.database


def _split_sql_url(url: str) -> tuple[str, str | None]:
    """(the URL without its password, the password)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as err:
        # The message would repeat the URL, password and all.
        raise _bad("config.url is not a SQLAlchemy database URL", "config.url") from err
    password = parsed.password
    if password is not None:
        parsed = parsed._replace(password=None)  # set() ignores None
    return parsed.render_as_string(hide_password=False), (
        str(password) if password is not None else None
    )


def check_config(
    settings: Settings, kind: str, config: dict[str, Any], credentials: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored config and credentials of a source, checked; raises `InvalidInput`."""
    if kind not in KINDS:
        raise _bad(f"kind must be one of {KINDS}", "kind")
    if not isinstance(config, dict):
        raise _bad("config must be an object", "config")
    creds = dict(credentials or {})
    if kind == "dataset":
        name = config.get("dataset")
        if not isinstance(name, str):
            raise _bad("a dataset source needs config.dataset", "config.dataset")
        data.check_name(name, "config.dataset")
        version = config.get("version", "latest")
        if version != "latest" and not (isinstance(version, int) and version >= 1):
            raise _bad("config.version must be a version number or 'latest'", "config.version")
        if creds:
            raise _bad("a dataset source takes no credentials", "credentials")
        return {"dataset": name, "version": version}, {}
    if kind == "uri":
        uri = config.get("uri")
        if not isinstance(uri, str) or not uri:
            raise _bad("a uri source needs config.uri", "config.uri")
        protocol = uri.split("://", 1)[0].lower() if "://" in uri else "file"
        if protocol == "file":
            _local_path(settings, uri)
        elif protocol not in REMOTE:
            raise _bad(
                f"URI scheme {protocol!r} is not allowed (use a path, {REMOTE})", "config.uri"
            )
        options = config.get("options") or {}
        if not isinstance(options, dict):
            raise _bad("config.options must be an object", "config.options")
        options = dict(options)
        for k in [k for k in options if SECRETISH.search(k)]:
            creds[k] = options.pop(k)  # credentials belong in credentials, where they are sealed
        if not all(isinstance(v, str) for v in creds.values()):
            raise _bad("credentials must map names (key, secret, token) to text", "credentials")
        out = {"uri": uri, "format": _file_format(uri, config.get("format")), "options": options}
        return out, creds
    url = config.get("url")
    if not isinstance(url, str) or not url:
        raise _bad("a sql source needs config.url (a SQLAlchemy URL)", "config.url")
    clean, password = _split_sql_url(url)
    if password is not None:
        creds["password"] = password
    unknown = set(creds) - {"password"}
    if unknown:
        raise _bad("a sql source takes only a password as credentials", "credentials")
    if _same_database(clean, settings.database_url):
        raise _bad(
            "a source cannot read mlteam's own database (its users, tokens and audit log)",
            "config.url",
        )
    if clean.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        database = make_url(clean).database or ""
        if database in ("", ":memory:"):
            raise _bad("a sqlite source needs a database file", "config.url")
        _local_path(settings, database)
    table, query = config.get("table"), config.get("query")
    if bool(table) == bool(query):
        raise _bad("a sql source needs exactly one of config.table or config.query", "config.table")
    if table is not None and (not isinstance(table, str) or not TABLE.match(table)):
        raise _bad("config.table must be a table name, optionally schema.table", "config.table")
    if query is not None and not isinstance(query, str):
        raise _bad("config.query must be a SQL query", "config.query")
    out = {"url": clean, "table": table} if table else {"url": clean, "query": query}
    return out, creds


def create_source(
    session: Session,
    actor: User,
    box: SecretBox,
    settings: Settings,
    slug: str,
    name: str,
    kind: str,
    config: dict[str, Any],
    credentials: dict[str, Any] | None = None,
) -> Source:
    """Add a source; its credentials are stored sealed and never shown again."""
    project = projects.resolve(session, actor, slug, Perm.data_write)
    data.check_name(name)
    config, creds = check_config(settings, kind, config, credentials or {})
    source = Source(
        project_id=project.id,
        name=name,
        kind=kind,
        config=config,
        secret=box.seal(creds) if creds else None,
        created_by=actor.id,
    )
    session.add(source)
    try:
        session.flush()
    except IntegrityError as err:
        raise Conflict(f"source {name} already exists", {"field": "name"}) from err
    audit.record(
        session,
        actor,
        "source.create",
        f"source:{name}",
        project_id=project.id,
        detail={"kind": kind, "credentials": bool(creds)},
    )
    return source


def _get(session: Session, project_id: str, name: str) -> Source:
    source = session.scalar(
        select(Source).where(Source.project_id == project_id, Source.name == name)
    )
    if source is None:
        raise NotFound(f"source {name} not found")
    return source


def get_source(session: Session, actor: User, slug: str, name: str) -> Source:
    project = projects.resolve(session, actor, slug, Perm.data_read)
    return _get(session, project.id, name)


def source_in(session: Session, project_id: str, name: str) -> Source:
    """A source of a project by name; callers have checked access."""
    return _get(session, project_id, name)


def list_sources(session: Session, actor: User, slug: str) -> list[Source]:
    project = projects.resolve(session, actor, slug, Perm.data_read)
    return list(
        session.scalars(select(Source).where(Source.project_id == project.id).order_by(Source.name))
    )


def delete_source(session: Session, actor: User, slug: str, name: str) -> None:
    """Remove a source no pipeline reads."""
    from mlteam.data.pipeline_models import Pipeline

    project = projects.resolve(session, actor, slug, Perm.data_write)
    source = _get(session, project.id, name)
    readers = [
        p.name
        for p in session.scalars(select(Pipeline).where(Pipeline.project_id == project.id))
        if any(i["kind"] == "source" and i["name"] == name for i in p.inputs.values())
    ]
    if readers:
        raise Conflict(f"source {name} is read by pipelines {readers}; change them first")
    session.delete(source)
    audit.record(session, actor, "source.delete", f"source:{name}", project_id=project.id)


def describe(source: Source) -> dict[str, Any]:
    """What anyone may see of a source: never its credentials."""
    return {
        "id": source.id,
        "name": source.name,
        "kind": source.kind,
        "config": source.config,
        "has_credentials": bool(source.secret),
        "created_at": source.created_at,
    }


def read_source(
    session: Session,
    actor: User,
    box: SecretBox,
    settings: Settings,
    store: ArtifactStore,
    source: Source,
) -> tuple[pa.Table, str | None]:
    """The source's data as Arrow, and the dataset version id it came from (if any).

    A read that fails says so as `UserCodeError` naming the source, with credentials scrubbed.
    """
    cfg = source.config
    if source.kind == "dataset":
        slug = projects.by_id(session, source.project_id).slug
        version = data.get_version(
            session, actor, slug, cfg["dataset"], cfg.get("version", "latest")
        )
        return data.read_table(store, version), version.id
    creds = box.open(source.secret, f"source {source.name}")
    try:
        if source.kind == "uri":
            return _read_uri(settings, cfg, creds), None
        return _read_sql(cfg, creds), None
    except MlteamError:
        raise
    except Exception as err:
        message = scrub(f"{type(err).__name__}: {err}", creds)
        raise UserCodeError(f"reading source {source.name} failed: {message[:1000]}") from None


def _read_uri(settings: Settings, cfg: dict[str, Any], creds: dict[str, Any]) -> pa.Table:
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq
    from fsspec.core import url_to_fs

    uri = cfg["uri"]
    if "://" not in uri or uri.startswith("file://"):
        uri = _local_path(settings, uri)  # checked again: a symlink may have moved
        if not Path(uri).is_file():
            raise UserCodeError(f"no file at {cfg['uri']}")
    fs, path = url_to_fs(uri, **{**cfg.get("options", {}), **creds})
    with fs.open(path, "rb") as fh:
        if cfg["format"] == "parquet":
            return pq.read_table(fh)
        if cfg["format"] == "csv":
            return pacsv.read_csv(fh)
        return pajson.read_json(fh)


def _read_sql(cfg: dict[str, Any], creds: dict[str, Any]) -> pa.Table:
    import pandas as pd
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    url = make_url(cfg["url"])
    if "password" in creds:
        url = url.set(password=creds["password"])
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if cfg.get("table"):
                prep = engine.dialect.identifier_preparer
                name = ".".join(prep.quote(part) for part in cfg["table"].split("."))
                sql = f"SELECT * FROM {name}"  # identifiers checked and quoted, not user SQL
            else:
                sql = cfg["query"]
            frame = pd.read_sql_query(text(sql), conn)
    finally:
        engine.dispose()
    return pa.Table.from_pandas(frame, preserve_index=False)
