"""Rich output of the ``atx`` commands: one console and one table style.

On a terminal, tables fit its width; identifiers (XIDs, ids, addresses) never
wrap, so that they can be copied, and the other columns wrap between words. Piped
(``| grep``, ``| less -S``, a file), nothing wraps at all: rich would
otherwise assume 80 columns and split values across lines. An exported
``COLUMNS`` still wins.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Collection, Sequence
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = ["PIPED_WIDTH", "DefaultsHelpFormatter", "console", "table"]

#: Width of piped output: wider than any row, so none wraps.
PIPED_WIDTH = 10_000


def console(file: IO[str] | None = None) -> Console:
    from rich.console import Console

    stream = file or sys.stdout
    width = None
    if not stream.isatty() and not os.environ.get("COLUMNS"):
        width = PIPED_WIDTH
    return Console(file=stream, width=width, soft_wrap=False)


def table(title: str, columns: Sequence[str], keep: Collection[str] = ()) -> Table:
    """A table whose ``keep`` columns never wrap; the others wrap between words
    and fold only a word wider than the column."""
    from rich.table import Table

    result = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        if column in keep:
            result.add_column(column, no_wrap=True)
        else:
            result.add_column(column, overflow="fold")
    return result


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Adds ``(default: X)`` to a flag's help unless the help already says it,
    or there is nothing to say (no default, a switch that is off)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or not action.option_strings
            or default is None
            or default is False
            or default == []
            or default is argparse.SUPPRESS
        ):
            return text
        shown = repr(default) if default == "" else "%(default)s"
        return f"{text} (default: {shown})" if text else f"(default: {shown})"
