"""User SQL in DuckDB, sealed off from the machine: it sees only the tables it was given.

Inputs are registered as Arrow tables first; then external access is turned off and the
configuration locked, so no step can read a file (`read_csv('/etc/passwd')`), attach a
database, load an extension or reach the network, nor turn any of that back on.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import duckdb
import pyarrow as pa

from mlteam.core.errors import InvalidInput

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_select(sql: str, field: str) -> None:
    """Refuse anything but exactly one SELECT statement (400 at definition time)."""
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidInput(f"{field} is empty", {"field": field})
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as err:
        raise InvalidInput(f"{field} is not valid SQL: {err}", {"field": field}) from err
    if len(statements) != 1:
        raise InvalidInput(f"{field} must be exactly one SQL statement", {"field": field})
    if statements[0].type != duckdb.StatementType.SELECT:
        raise InvalidInput(f"{field} must be a SELECT query", {"field": field})


def params_of(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters `sql` names as `$name`, to pass to DuckDB as prepared parameters."""
    return {name: params[name] for name in dict.fromkeys(PARAM.findall(sql)) if name in params}


class Sandbox:
    """One sealed DuckDB connection holding the given tables."""

    def __init__(
        self, tables: dict[str, pa.Table], threads: int = 2, memory_limit: str = "1GB"
    ) -> None:
        self.con = duckdb.connect(":memory:")
        for name, table in tables.items():
            self.con.register(name, table)
        for setting in (
            f"SET threads={int(threads)}",
            f"SET memory_limit='{memory_limit}'",  # a Settings value, pattern-checked
            "SET TimeZone='UTC'",
            "SET autoinstall_known_extensions=false",
            "SET autoload_known_extensions=false",
            "SET allow_community_extensions=false",
            "SET enable_external_access=false",
            "SET lock_configuration=true",
        ):
            self.con.execute(setting)

    def add(self, name: str, table: pa.Table) -> None:
        self.con.register(name, table)

    def query(
        self, sql: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> pa.Table:
        """Run one SELECT; past `timeout` seconds it is interrupted (`TimeoutError`)."""
        timer = threading.Timer(timeout, self.con.interrupt) if timeout else None
        if timer:
            timer.start()
        try:
            return self.con.sql(sql, params=params_of(sql, params or {}) or None).to_arrow_table()
        except duckdb.InterruptException as err:
            raise TimeoutError(f"stopped after {timeout:g} s") from err
        finally:
            if timer:
                timer.cancel()

    def rows(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params or []).fetchall()

    def close(self) -> None:
        self.con.close()
