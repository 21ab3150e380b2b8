"""Find driver placeholders in SQL text, outside quotes and comments.

pymysql uses ``%s`` and ``%(name)s`` (``%%`` is a literal percent); psycopg the
same plus its binary/text forms ``%b``, ``%t``, ``%(name)b``; sqlite3 uses ``?``,
``?NNN``, ``:name``, ``@name`` and ``$name``. PostgreSQL's dollar-quoted strings
(``$$...$$``, ``$tag$...$tag$``) are quotes. Each placeholder is
rewritten to a numbered marker ``:__pK`` that sqlglot parses as a named
placeholder, so every clause of the parsed tree knows exactly which of the
caller's parameters it consumes, whatever order the clauses come in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from atx.dialect import Dialect
from atx.rm.types.sql import ParamSQL, ParamStyle

__all__ = ["MARKER_PREFIX", "Normalized", "normalize", "render", "split_statements"]

MARKER_PREFIX = "__p"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = re.compile(r"[0-9]+")
# sqlglot writes a marker back as ``:__pK``, or as ``%(__pK)s`` for PostgreSQL.
_MARKER = re.compile(r":__p([0-9]+)|%\(__p([0-9]+)\)s")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
#: The dialects whose drivers interpolate ``%`` placeholders (and need ``%%`` then).
_PERCENT = frozenset({Dialect.MYSQL, Dialect.POSTGRES})


@dataclass(frozen=True)
class Normalized:
    text: str  # the SQL with every placeholder replaced by ``:__pK``
    refs: tuple[int | str, ...]  # marker K -> positional index or parameter name
    style: ParamStyle
    positional_count: int


def _skip_quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    """Index just past the quoted token starting at ``i``."""
    n = len(sql)
    j = i + 1
    while j < n:
        c = sql[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _skip_comment(sql: str, i: int, dialect: Dialect) -> int:
    """Index past a comment starting at ``i``, or ``i`` when none starts there."""
    if sql.startswith("--", i) or (dialect is Dialect.MYSQL and sql[i] == "#"):
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end + 1
    if sql.startswith("/*", i):
        end = sql.find("*/", i + 2)
        return len(sql) if end < 0 else end + 2
    return i


def _escape_string(sql: str, i: int, dialect: Dialect) -> bool:
    """PostgreSQL's ``E'...'`` string, whose backslashes escape (plain strings' do not)."""
    if dialect is not Dialect.POSTGRES or sql[i] != "'" or i == 0 or sql[i - 1] not in "eE":
        return False
    return i == 1 or not (sql[i - 2].isalnum() or sql[i - 2] == "_")


def _segments(sql: str, dialect: Dialect) -> list[tuple[bool, str]]:
    """Split into (is_code, text) segments; quotes and comments are not code."""
    out: list[tuple[bool, str]] = []
    backslash = dialect is Dialect.MYSQL
    start = i = 0
    n = len(sql)
    while i < n:
        c = sql[i]
        dollar = _DOLLAR_TAG.match(sql, i) if c == "$" and dialect is Dialect.POSTGRES else None
        if dollar is not None and not (i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            close = sql.find(dollar.group(), dollar.end())
            end = n if close < 0 else close + len(dollar.group())
        elif c in "'\"`" or (c == "[" and dialect is Dialect.SQLITE):
            end = (
                _skip_quoted(sql, i, c, (backslash and c != "`") or _escape_string(sql, i, dialect))
                if c != "["
                else (sql.find("]", i) + 1 or n)
            )
        else:
            end = _skip_comment(sql, i, dialect)
            if end == i:
                i += 1
                continue
        if i > start:
            out.append((True, sql[start:i]))
        out.append((False, sql[i:end]))
        start = i = end
    if start < n:
        out.append((True, sql[start:]))
    return out


def split_statements(sql: str, dialect: Dialect) -> list[str]:
    """The statements of ``sql`` cut at each ``;`` outside quotes and comments, each as
    written (without its ``;``); pieces holding nothing but blanks and comments are left out."""
    pieces: list[str] = []
    current: list[str] = []
    has_code = False
    for is_code, text in _segments(sql, dialect):
        if not is_code:
            current.append(text)
            continue
        parts = text.split(";")
        for k, part in enumerate(parts):
            if k:
                if has_code:
                    pieces.append("".join(current).strip())
                current, has_code = [], False
            current.append(part)
            has_code = has_code or bool(part.strip())
    if has_code:
        pieces.append("".join(current).strip())
    return pieces


def normalize(sql: str, dialect: Dialect, has_params: bool = True) -> Normalized:
    """Replace the driver's placeholders with ``:__pK`` markers."""
    refs: list[int | str] = []
    positional = 0
    named = False
    parts: list[str] = []
    for is_code, text in _segments(sql, dialect):
        if not is_code:
            # pymysql and psycopg interpolate the whole text, quotes included: '%%' there
            # is one '%'.
            mysql_params = dialect in _PERCENT and has_params
            parts.append(text.replace("%%", "%") if mysql_params else text)
            continue
        i = 0
        n = len(text)
        buf: list[str] = []
        while i < n:
            c = text[i]
            ref: int | str | None = None
            if c == "%" and has_params and dialect in _PERCENT:
                if text.startswith("%s", i) or (
                    dialect is Dialect.POSTGRES and text.startswith(("%b", "%t"), i)
                ):
                    ref, i = positional, i + 2
                    positional += 1
                elif text.startswith("%%", i):
                    buf.append("%")
                    i += 2
                    continue
                elif text.startswith("%(", i):
                    close = text.find(")", i)
                    kinds = "sbt" if dialect is Dialect.POSTGRES else "s"
                    if close > 0 and text[close + 1 : close + 2] in tuple(kinds):
                        ref, i = text[i + 2 : close], close + 2
            elif dialect is Dialect.SQLITE and c == "?":
                digits = _DIGITS.match(text, i + 1)
                if digits:
                    ref, i = int(digits.group()) - 1, digits.end()
                else:
                    ref, i = positional, i + 1
                    positional += 1
            elif dialect is Dialect.SQLITE and c in ":@$":
                name = _NAME.match(text, i + 1)
                if name and not (i > 0 and text[i - 1] == ":"):
                    ref, i = name.group(), name.end()
            if ref is None:
                buf.append(c)
                i += 1
                continue
            if isinstance(ref, str):
                named = True
            buf.append(f":{MARKER_PREFIX}{len(refs)}")
            refs.append(ref)
        parts.append("".join(buf))
    style = ParamStyle.NAMED if named else ParamStyle.POSITIONAL if refs else ParamStyle.NONE
    return Normalized("".join(parts), tuple(refs), style, positional)


def render(generated: str, refs: tuple[int | str, ...], dialect: Dialect) -> ParamSQL:
    """Turn sqlglot output holding ``:__pK`` markers back into driver SQL.

    Every marker becomes a positional placeholder; ``refs`` of the result lists the
    caller's parameter (index or name) each one consumes. On MySQL a literal ``%``
    is doubled (psycopg's too) because the SQL is always run with parameters.
    """
    out: list[str] = []
    used: list[int | str] = []
    placeholder = dialect.placeholder
    for is_code, text in _segments(generated, dialect):
        if not is_code:
            out.append(text.replace("%", "%%") if dialect in _PERCENT else text)
            continue
        double = dialect in _PERCENT
        pos = 0
        for match in _MARKER.finditer(text):
            piece = text[pos : match.start()]
            out.append(piece.replace("%", "%%") if double else piece)
            out.append(placeholder)
            used.append(refs[int(match.group(1) or match.group(2))])
            pos = match.end()
        out.append(text[pos:].replace("%", "%%") if double else text[pos:])
    return ParamSQL("".join(out), tuple(used))
