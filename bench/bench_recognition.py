"""Cached statement recognition vs an uncached sqlglot parse (target: cached <= 10 us).

Run: .venv/bin/python bench/bench_recognition.py
"""

from __future__ import annotations

import timeit

import sqlglot

from atx.dialect import Dialect
from atx.rm.exec import StatementExecutor

SQL = "UPDATE account SET balance = balance - %s WHERE id = %s AND balance >= %s"


def main() -> None:
    executor = StatementExecutor(Dialect.MYSQL, "bench")
    executor.recognize(SQL)
    n = 100_000
    cached = min(timeit.repeat(lambda: executor.recognize(SQL), number=n, repeat=5)) / n
    m = 500
    parse = min(timeit.repeat(lambda: sqlglot.parse_one(SQL.replace("%s", "?"), read="mysql"),
                              number=m, repeat=3)) / m  # fmt: skip
    print(f"cached recognition: {cached * 1e6:.3f} us/op (target <= 10 us)")
    print(f"uncached sqlglot parse: {parse * 1e6:.1f} us/op ({parse / cached:.0f}x slower)")


if __name__ == "__main__":
    main()
