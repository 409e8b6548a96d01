"""CSV → Parquet with DuckDB: parallel, streaming, and bounded in memory.

DuckDB reads the CSV in parallel and writes Parquet row group by row group under a memory
limit (`MLTEAM_INGEST_MEMORY_LIMIT`, default 512MB), so a file of several GB needs a few hundred
MB of RAM, not its own size. The limit trades memory for speed: under a tight one DuckDB's
Parquet writer serialises (128MB: a 1M-row, 129 MB CSV takes 2.4 s on one core; 512MB:
1.1-1.3 s on two, for ~300-360 MB of extra RSS on CSVs of 128-388 MB). Types are sniffed
unless the caller pins them (`types={"col": "INTEGER"}`). A column sniffed from the
first rows as a number that later holds text is read as text instead of failing; a value that
contradicts a *pinned* type is the caller's fault and is named by line and column.

Every fault of the file (empty, ragged, not UTF-8, a value against a pinned type) becomes an
`InvalidInput` naming the line and, where there is one, the column; nothing is written then.
"""

from __future__ import annotations

import csv
import os
import re
from typing import Any

import duckdb

from mlteam.config import Settings
from mlteam.core.errors import InvalidInput, Unavailable

# Snappy, not zstd: on a 1M x 20 CSV (129 MB) zstd writes a 35 MB file against snappy's 53 MB,
# but costs ~0.35 CPU-s more to write (2.4 against 2.1 CPU-s for the whole COPY) and twice the
# CPU to read back (0.028 against 0.013 CPU-s per numeric column of 1M values), on every read
# of the version after it: the profile, checks, training, SQL.
COMPRESSION = "snappy"

# DuckDB's SQL type names a user may pin; anything else is refused before it reaches SQL.
TYPE_NAMES = {
    "BOOLEAN",
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "VARCHAR",
    "DATE",
    "TIME",
    "TIMESTAMP",
    "TIMESTAMPTZ",
    "UUID",
}
_DECIMAL = re.compile(r"^DECIMAL\(\s*\d{1,2}\s*,\s*\d{1,2}\s*\)$")
_LINE = re.compile(r"CSV Error on Line: (\d+)")
_CONVERT = re.compile(r'converting column "([^"]*)"\. Could not convert string "(.*?)" to \'(\w+)')
_COLUMNS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


def limits() -> tuple[str, int]:
    """The ingest's memory limit and threads (MLTEAM_INGEST_MEMORY_LIMIT, _THREADS), read
    when an ingest starts, so a setting changed for a server process holds for its uploads."""
    s = Settings()
    return s.ingest_memory_limit, s.ingest_threads or min(8, os.cpu_count() or 1)


def connect(
    memory_limit: str | None = None, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that spills to disk rather than grow past `memory_limit`."""
    if memory_limit is None or threads is None:
        default_limit, default_threads = limits()
        memory_limit, threads = memory_limit or default_limit, threads or default_threads
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit='{memory_limit}'")
    con.execute(f"SET threads={int(threads)}")
    con.execute("SET enable_progress_bar=false")
    con.execute("SET preserve_insertion_order=true")  # the same file gives the same Parquet
    return con


def check_types(types: dict[str, str] | None) -> dict[str, str]:
    """Normalise pinned types; refuse names DuckDB would not know (or that smuggle SQL)."""
    out: dict[str, str] = {}
    for col, typ in (types or {}).items():
        norm = str(typ).strip().upper()
        if norm not in TYPE_NAMES and not _DECIMAL.match(norm):
            raise InvalidInput(
                f"unknown type {typ!r} for column {col!r}: use one of "
                f"{', '.join(sorted(TYPE_NAMES))} or DECIMAL(p,s)",
                {"field": "types", "column": col},
            )
        out[str(col)] = norm
    return out


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _types_sql(types: dict[str, str]) -> str:
    if not types:
        return ""
    pairs = ", ".join(f"{_sql_str(c)}: {_sql_str(t)}" for c, t in types.items())
    return f", types={{{pairs}}}"


def _header(path: str) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        return next(csv.reader(fh), [])


def csv_to_parquet(path: str, out: str, types: dict[str, str] | None = None) -> int:
    """Write the CSV at `path` as Parquet at `out`; returns the row count."""
    if os.path.getsize(path) == 0:
        raise InvalidInput("the file is empty", {"field": "file"})
    pinned = check_types(types)
    header = _header(path)
    unknown = sorted(set(pinned) - set(header))
    if unknown:
        raise InvalidInput(
            f"types names columns the file does not have: {', '.join(unknown)}",
            {"field": "types", "columns": unknown},
        )
    as_text: dict[str, str] = {}
    con = connect()
    try:
        for _ in range(len(header) + 1):
            src = (
                f"read_csv({_sql_str(path)}, header=true, delim=',', quote='\"', escape='\"', "
                f"strict_mode=true, encoding='utf-8'{_types_sql({**as_text, **pinned})})"
            )
            try:
                con.execute(
                    f"COPY (SELECT * FROM {src}) TO {_sql_str(out)} "
                    f"(FORMAT parquet, COMPRESSION {COMPRESSION}, ROW_GROUP_SIZE 122880)"
                )
            except duckdb.ConversionException as err:
                col = _sniffed_wrong(str(err), pinned)
                if col is None or col in as_text:
                    raise _fault(path, str(err), pinned) from err
                as_text[col] = "VARCHAR"  # sniffed from the first rows; text after all
                continue
            except duckdb.OutOfMemoryException as err:  # the platform's budget, not the file
                raise Unavailable(
                    f"the ingest ran out of its memory budget ({limits()[0]}); an operator can "
                    "raise MLTEAM_INGEST_MEMORY_LIMIT",
                    {"field": "file"},
                ) from err
            except duckdb.Error as err:
                raise _fault(path, str(err), pinned) from err
            rows = con.execute(f"SELECT count(*) FROM read_parquet({_sql_str(out)})").fetchone()
            n = int(rows[0]) if rows else 0
            if n == 0:
                os.unlink(out)
                raise InvalidInput("the file has a header but no rows", {"field": "file"})
            return n
        raise InvalidInput("could not settle the column types of the file", {"field": "file"})
    finally:
        con.close()


def _sniffed_wrong(msg: str, pinned: dict[str, str]) -> str | None:
    m = _CONVERT.search(msg)
    if m and m.group(1) not in pinned:
        return m.group(1)
    return None


def _fault(path: str, msg: str, pinned: dict[str, str]) -> InvalidInput:
    """Turn DuckDB's CSV error into one naming the line and column."""
    line_m = _LINE.search(msg)
    line = int(line_m.group(1)) if line_m else None
    if "Invalid unicode" in msg:
        line, column = _bad_utf8(path)
        return InvalidInput(
            f"column {column!r} is not valid UTF-8 text (line {line}); save the file as UTF-8",
            {"field": "file", "column": column, "line": line},
        )
    m = _CONVERT.search(msg)
    if m:
        col, value, typ = m.groups()
        detail: dict[str, Any] = {"field": "file", "line": line, "column": col, "value": value}
        return InvalidInput(
            f"line {line}, column {col!r}: {value!r} is not a {typ} "
            f"(the type pinned for {col!r} is {pinned.get(col, typ)})",
            {**detail, "type": pinned.get(col, typ)},
        )
    m = _COLUMNS.search(msg)
    if m and line:
        want, got = int(m.group(1)), int(m.group(2))
        return _ragged(line, want, got)
    ragged = _ragged_row(path)
    if ragged:
        return _ragged(*ragged)
    first = msg.strip().splitlines()[0] if msg.strip() else "unreadable"
    where = f" at line {line}" if line else ""
    return InvalidInput(f"malformed CSV{where}: {first}", {"field": "file", "line": line})


def _ragged(line: int, want: int, got: int) -> InvalidInput:
    return InvalidInput(
        f"malformed CSV at line {line}: expected {want} fields, got {got}",
        {"field": "file", "line": line, "expected": want, "got": got},
    )


def _ragged_row(path: str) -> tuple[int, int, int] | None:
    """(line number, expected, got) of the first row whose field count is off (streamed)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return None
        for row in reader:
            if row and len(row) != len(header):
                return reader.line_num, len(header), len(row)
    return None


def _bad_utf8(path: str) -> tuple[int | None, str | None]:
    """(line, column) of the first field that is not UTF-8 (streamed, line by line)."""
    header = _header(path)
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                for j, field in enumerate(raw.rstrip(b"\r\n").split(b",")):
                    try:
                        field.decode("utf-8")
                    except UnicodeDecodeError:
                        return i, header[j] if j < len(header) else None
                return i, None
    return None, None
