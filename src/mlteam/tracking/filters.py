"""MLflow's filter language for runs: parsed into conditions, with errors that say where.

    metrics.acc > 0.9 and params.lr = '0.01' and tags."mlflow.runName" LIKE 'cand%'
    attributes.status IN ('FINISHED', 'FAILED') and attributes.start_time >= 1700000000000

A filter is comparisons joined by AND (no OR, as in MLflow). An identifier is `metrics.`,
`params.`, `tags.` or `attributes.` (or MLflow's aliases `metric.`, `param.`, `parameter.`,
`tag.`, `attribute.`, `attr.`, `run.`) and a key, bare or quoted with backticks or double
quotes. Metrics and numeric attributes (start_time, end_time) compare with = != > >= < <= to
numbers; params, tags and string attributes (status, run_name, run_id) with = != LIKE ILIKE,
IN (...) and NOT IN (...) to quoted strings; params, tags and metrics also take IS NULL and
IS NOT NULL. Strings are quoted with ' or "; a doubled quote stands for itself.

A small hand-written tokenizer and recursive-descent parser: positions in errors are offsets
into the filter string, counted from 0. `tracking.search` turns the result into SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from mlteam.core.errors import InvalidInput

MAX_FILTER = 20_000  # characters

_ENTITIES = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attr",
    "attributes": "attr",
    "attr": "attr",
    "run": "attr",
}
ATTRIBUTES = {  # lower-cased name → (canonical name, is numeric)
    "status": ("status", False),
    "run_name": ("run_name", False),
    "run name": ("run_name", False),
    "run_id": ("run_id", False),
    "start_time": ("start_time", True),
    "created": ("start_time", True),
    "end_time": ("end_time", True),
}
NUMERIC_OPS = ("=", "!=", ">", ">=", "<", "<=")
NULL_OPS = ("IS NULL", "IS NOT NULL")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
_ALLOWED = {
    "metric": NUMERIC_OPS + NULL_OPS,
    "param": STRING_OPS + NULL_OPS,
    "tag": STRING_OPS + NULL_OPS,
    "num_attr": NUMERIC_OPS + NULL_OPS,
    "str_attr": STRING_OPS,
}


@dataclass(frozen=True)
class Condition:
    """One comparison of a filter: `kind` is metric, param, tag or attr."""

    kind: str
    key: str
    op: str
    value: Any
    position: int


@dataclass(frozen=True)
class OrderBy:
    kind: str
    key: str
    ascending: bool


class _Token(NamedTuple):
    kind: str  # ident, word, op, string, number, punct, end
    text: str  # as written, for messages
    pos: int
    value: Any  # ident: (entity, key); word: upper-cased; string/number: the value


class _Error(Exception):
    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos, self.message = pos, message


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_.\-/:]+")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The string quoted at `start` (a doubled quote stands for itself) and where it ends."""
    q, out, i = text[start], [], start + 1
    while i < len(text):
        if text[i] == q:
            if text[i + 1 : i + 2] == q:
                out.append(q)
                i += 2
                continue
            return "".join(out), i + 1
        out.append(text[i])
        i += 1
    raise _Error(start, f"no closing {q} for the text that starts here")


def _tokens(text: str) -> Iterator[_Token]:
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            yield _Token("punct", ch, i, ch)
            i += 1
        elif text.startswith(("!=", ">=", "<="), i):
            yield _Token("op", text[i : i + 2], i, text[i : i + 2])
            i += 2
        elif ch in "=<>":
            yield _Token("op", ch, i, ch)
            i += 1
        elif ch in "'\"":
            value, end = _quoted(text, i)
            yield _Token("string", text[i:end], i, value)
            i = end
        elif (m := _NUMBER.match(text, i)) and (ch.isdigit() or ch in "+-."):
            yield _Token("number", m.group(), i, float(m.group()))
            i = m.end()
        elif m := _WORD.match(text, i):
            j = m.end()
            if j < n and text[j] == ".":  # entity.key
                j += 1
                if j < n and text[j] in '`"':
                    key, j = _quoted(text, j)
                elif km := _BARE_KEY.match(text, j):
                    key, j = km.group(), km.end()
                else:
                    raise _Error(j, f"expected a key after '{m.group()}.'")
                yield _Token("ident", text[i:j], i, (m.group(), key))
            else:
                yield _Token("word", m.group(), i, m.group().upper())
            i = j
        elif ch == "`":
            raise _Error(i, "a backtick-quoted key needs a prefix, as in metrics.`my metric`")
        else:
            raise _Error(i, f"unexpected character {ch!r}")
    yield _Token("end", "", n, None)


def _resolve(tok: _Token) -> tuple[str, str]:
    """(kind, key) of an identifier token: kind metric, param, tag, num_attr or str_attr."""
    entity, key = tok.value
    kind = _ENTITIES.get(entity.lower())
    if kind is None:
        raise _Error(
            tok.pos,
            f"unknown identifier {entity!r}: use metrics., params., tags. or attributes.",
        )
    if kind != "attr":
        return kind, key
    if key.lower() not in ATTRIBUTES:
        known = ", ".join(sorted({name for name, _ in ATTRIBUTES.values()}))
        raise _Error(tok.pos, f"unknown attribute {key!r}: search supports {known}")
    name, numeric = ATTRIBUTES[key.lower()]
    return ("num_attr" if numeric else "str_attr"), name


def _kind(kind: str) -> str:
    return "attr" if kind.endswith("_attr") else kind


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = list(_tokens(text))
        self.i = 0

    def next(self) -> _Token:
        tok = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def is_word(self, tok: _Token, *words: str) -> bool:
        return tok.kind == "word" and tok.value in words

    def conditions(self) -> list[Condition]:
        out = [self.comparison()]
        while (tok := self.next()).kind != "end":
            if self.is_word(tok, "AND"):
                out.append(self.comparison())
            elif self.is_word(tok, "OR"):
                raise _Error(tok.pos, "OR is not supported; join conditions with AND")
            else:
                raise _Error(tok.pos, f"expected AND or the end of the filter, found {tok.text!r}")
        return out

    def comparison(self) -> Condition:
        ident = self.next()
        if ident.kind != "ident":
            found = f"found {ident.text!r}" if ident.text else "found the end of the filter"
            raise _Error(
                ident.pos,
                "expected an identifier such as metrics.<key>, params.<key>, tags.<key> or "
                f"attributes.<name>, {found}",
            )
        kind, key = _resolve(ident)
        tok = self.next()
        if tok.kind == "op" or self.is_word(tok, "LIKE", "ILIKE", "IN"):
            op = tok.value
        elif self.is_word(tok, "NOT") and self.is_word(self.tokens[self.i], "IN"):
            self.next()
            op = "NOT IN"
        elif self.is_word(tok, "IS"):
            negate = self.is_word(self.tokens[self.i], "NOT")
            if negate:
                self.next()
            if not self.is_word(self.next(), "NULL"):
                raise _Error(tok.pos, f"expected IS NULL or IS NOT NULL after {ident.text!r}")
            op = "IS NOT NULL" if negate else "IS NULL"
        else:
            raise _Error(tok.pos, f"expected a comparator after {ident.text!r}")
        if op not in _ALLOWED[kind]:
            raise _Error(
                tok.pos,
                f"{op} does not apply to {ident.text!r}; use {', '.join(_ALLOWED[kind])}",
            )
        value = self.value(kind, op, ident)
        return Condition(_kind(kind), key, op, value, ident.pos)

    def value(self, kind: str, op: str, ident: _Token) -> Any:
        if op in NULL_OPS:
            return None
        if op in ("IN", "NOT IN"):
            if (tok := self.next()).text != "(":
                raise _Error(tok.pos, f"expected '(' after {op}")
            values = [self.string(ident, op)]
            while (tok := self.next()).text == ",":
                values.append(self.string(ident, op))
            if tok.text != ")":
                raise _Error(tok.pos, f"expected ',' or ')' in the {op} list")
            return values
        if kind in ("metric", "num_attr"):
            tok = self.next()
            if tok.kind != "number":
                raise _Error(tok.pos, f"expected a number after '{ident.text} {op}'")
            number = tok.value
            return int(number) if number.is_integer() and abs(number) < 2**63 else number
        value = self.string(ident, op)
        if op in ("LIKE", "ILIKE") and (len(value) - len(value.rstrip("\\"))) % 2:
            raise _Error(self.tokens[self.i - 1].pos, "a LIKE pattern cannot end with a lone '\\'")
        return value

    def string(self, ident: _Token, op: str) -> str:
        tok = self.next()
        if tok.kind != "string":
            raise _Error(tok.pos, f"expected a quoted string after '{ident.text} {op}'")
        return tok.value


def parse_filter(text: str) -> list[Condition]:
    """The conditions of a filter string (all must hold), or `InvalidInput` naming where."""
    if len(text) > MAX_FILTER:
        raise InvalidInput(
            f"the filter is longer than {MAX_FILTER} characters", {"field": "filter"}
        )
    if not text.strip():
        return []
    try:
        return _Parser(text).conditions()
    except _Error as err:
        raise InvalidInput(
            f"invalid filter at position {err.pos}: {err.message}",
            {"field": "filter", "position": err.pos},
        ) from None


def parse_order_by(clauses: list[str] | None) -> list[OrderBy]:
    """`metrics.acc DESC`, `params.lr`, `attributes.start_time ASC`, or a bare attribute."""
    out: list[OrderBy] = []
    for index, clause in enumerate(clauses or []):
        try:
            if not isinstance(clause, str):
                raise _Error(0, "an order_by clause is a string")
            tokens = list(_tokens(clause))
            first = tokens[0]
            if first.kind == "word" and first.text.lower() in ATTRIBUTES:
                first = first._replace(kind="ident", value=("attributes", first.text))
            if first.kind != "ident":
                raise _Error(first.pos, "expected an identifier such as metrics.acc")
            kind, key = _resolve(first)
            direction = tokens[1]
            if direction.kind == "end":
                ascending = True
            elif direction.kind == "word" and direction.value in ("ASC", "DESC"):
                ascending = direction.value == "ASC"
            else:
                raise _Error(direction.pos, "expected ASC or DESC")
            if tokens[2 if direction.kind != "end" else 1].kind != "end":
                raise _Error(tokens[2].pos, "expected the end of the clause")
        except _Error as err:
            raise InvalidInput(
                f"invalid order_by clause {clause!r} at position {err.pos}: {err.message}",
                {"field": "order_by", "index": index, "position": err.pos},
            ) from None
        item = OrderBy(_kind(kind), key, ascending)
        if any((o.kind, o.key) == (item.kind, item.key) for o in out):
            raise InvalidInput(
                f"order_by names {clause!r} twice", {"field": "order_by", "index": index}
            )
        out.append(item)
    return out
