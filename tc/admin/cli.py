"""``atx admin``: inspect and operate global transactions from a shell.

Rich tables by default; ``--json`` prints stable JSON for scripts (statuses
by Seata name, times in ms). Failures print one line and a hint (one JSON
object with ``--json``) and exit 1, or 2 for a bad flag or filter
(:mod:`atx.cli_errors`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

__all__ = ["add_arguments", "run"]


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    # Accepted before and after the subcommand: only the top level has defaults.
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--tc",
        default=default,
        metavar="ADDR",
        help="TC address (default: $ATX_TC_ADDRESS or 127.0.0.1:8091)",
    )
    parser.add_argument(
        "--admin-token",
        default=default,
        help="admin token (default: $ATX_ADMIN_TOKEN)",
    )
    parser.add_argument(
        "--tls-ca",
        default=default,
        metavar="PATH",
        help="PEM CA bundle: talk TLS to the TC (default: $ATX_TC_TLS_CA; empty = plaintext)",
    )
    parser.add_argument(
        "--tls-server-name",
        default=default,
        metavar="NAME",
        help="host name the TC's certificate carries, when not the --tc host",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print JSON for scripts",
    )
    parser.add_argument(
        "--operator", default=default, help="your name in the audit log (default: token identity)"
    )


def _paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--page-size",
        type=int,
        default=0,
        metavar="N",
        help="rows per page (default: the TC's, 50)",
    )
    parser.add_argument("--page-token", default="", help="continue from this page token")
    parser.add_argument("--all", action="store_true", help="follow every page (default: one page)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="admin_command", metavar="ACTION", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        _common(p, top=False)
        return p

    p = command("globals", "list global transactions")
    p.add_argument(
        "--status",
        action="append",
        default=[],
        help="status filter, e.g. Begin or RollbackFailed (repeat or comma-separate)",
    )
    p.add_argument("--app", default="", help="application id")
    p.add_argument("--name", default="", help="transaction name")
    p.add_argument("--xid", default="")
    p.add_argument("--since", default="", help="begun at or after (ms or ISO time)")
    p.add_argument("--until", default="", help="begun at or before (ms or ISO time)")
    p.add_argument("--history", action="store_true", help="include finished sessions")
    _paging(p)

    p = command("show", "one global transaction with its branches and locks")
    p.add_argument("xid")

    p = command("locks", "list global row locks")
    p.add_argument("--xid", default="")
    p.add_argument("--resource", default="", help="resource id")
    p.add_argument("--table", default="")
    p.add_argument("--pk", default="")
    _paging(p)

    p = command("audit", "list the admin audit log")
    p.add_argument("--xid", default="")
    _paging(p)

    for name, text in (
        ("retry", "run phase two now (also revives a failed session)"),
        ("stop-retry", "pause background retries of phase two"),
        ("resume-retry", "resume background retries of phase two"),
    ):
        command(name, text).add_argument("xid")
    for name, text in (
        ("rollback", "roll back a session still in Begin (needs --yes)"),
        ("delete", "delete a finished or failed session, releasing its locks (needs --yes)"),
    ):
        p = command(name, text)
        p.add_argument("xid")
        p.add_argument("--yes", action="store_true", help="confirm the destructive action")

    p = command("deferred", "dead-lettered and pending deferred calls of a service")
    dsub = p.add_subparsers(dest="deferred_command", metavar="ACTION", required=True)
    d = dsub.add_parser("list", help="list deferred calls (default: dead and pending ones)")
    d.add_argument(
        "--state",
        action="append",
        default=[],
        help="dead, pending, done or all (repeat or comma-separate; default: dead,pending)",
    )
    d.add_argument(
        "--page-size", type=int, default=0, metavar="N", help="rows per state (default: 100)"
    )
    d = dsub.add_parser("retry", help="retry one deferred call now")
    d.add_argument("id")
    for d in dsub.choices.values():
        _common(d, top=False)
        d.add_argument("--service", required=True, metavar="ADDR", help="service gRPC address")
        d.add_argument(
            "--service-token", default=None, help="bearer token of the service ($ATX_TOKEN)"
        )


def _time_ms(text: str, flag: str) -> int:
    from atx.tc.admin.errors import InvalidFilterError

    if not text:
        return 0
    if text.isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        raise InvalidFilterError(flag, text, "expected ms since the epoch or an ISO time") from None


def _fmt_time(ms: int) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def run(args: argparse.Namespace) -> int:
    from atx.cli_errors import report
    from atx.errors import AtxError

    try:
        return _dispatch(args)
    except AtxError as error:
        hint = ""
        if error.code == "CONFIRMATION_REQUIRED":
            hint = "pass --yes"
        elif error.code == "UNAVAILABLE":
            hint = "is the TC running there? pass --tc HOST:PORT or set ATX_TC_ADDRESS"
            if error.details.get("tls") == "False":
                hint += "; if it serves TLS, pass --tls-ca PATH"
        elif error.code == "UNAUTHENTICATED":
            hint = "pass the TC's admin token with --admin-token or ATX_ADMIN_TOKEN"
        return report(error, as_json=args.json, hint=hint)
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from atx.tc.admin.client import (
        AdminClient,
        default_admin_token,
        default_tc_address,
        default_tls_ca,
    )

    out = _Output(args.json)
    if args.admin_command == "deferred":
        return _deferred(args, out)
    token = args.admin_token if args.admin_token is not None else default_admin_token()
    operator = args.operator or ""
    tls_ca = args.tls_ca if args.tls_ca is not None else default_tls_ca()
    with AdminClient(
        args.tc or default_tc_address(),
        token,
        tls_ca=tls_ca,
        tls_server_name=args.tls_server_name or "",
    ) as client:
        handler = _HANDLERS[args.admin_command]
        handler(client, args, operator, out)
    return 0


# --- output -------------------------------------------------------------------------


#: Columns that never wrap: identifiers stay whole, so that they can be copied.
_KEEP = ("XID", "Status", "ID", "Branch", "State")


class _Output:
    def __init__(self, as_json: bool) -> None:
        from atx.cli_output import console

        self.as_json = as_json
        self.console = console()

    def json(self, value: object) -> None:
        sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")

    def table(self, title: str, columns: list[str], rows: list[list[str]], footer: str) -> None:
        from atx.cli_output import table as new_table

        table = new_table(title, columns, keep=_KEEP)
        for row in rows:
            table.add_row(*row)
        self.console.print(table)
        if footer:
            self.console.print(footer, style="dim")


_STATUS_STYLE = {
    "Begin": "cyan",
    "Committed": "green",
    "Rollbacked": "yellow",
    "TimeoutRollbacked": "yellow",
}


def _status_cell(status: str, stopped: bool = False) -> str:
    style = _STATUS_STYLE.get(status, "red" if "Fail" in status or "Timeout" in status else "")
    text = f"[{style}]{status}[/]" if style else status
    return text + (" [magenta](retry stopped)[/]" if stopped else "")


def _pages(fetch: Callable[[str], tuple[list[Any], str, int]], args: argparse.Namespace) -> Any:
    items, token, total = fetch(args.page_token)
    while args.all and token:
        more, token, total = fetch(token)
        items.extend(more)
    return items, token, total


# --- handlers -----------------------------------------------------------------------


def _globals(client: Any, args: argparse.Namespace, operator: str, out: _Output) -> None:
    from atx.tc.admin.view import parse_global_status, session_json
    from atx.v1 import admin_pb2, types_pb2

    statuses = [
        types_pb2.GlobalStatus.ValueType(int(parse_global_status(part)))
        for value in args.status
        for part in value.split(",")
        if part.strip()
    ]

    def fetch(page_token: str) -> tuple[list[Any], str, int]:
        request = admin_pb2.ListGlobalSessionsRequest(
            statuses=statuses,
            application_id=args.app,
            transaction_name=args.name,
            xid=args.xid,
            begin_time_from_ms=_time_ms(args.since, "--since"),
            begin_time_to_ms=_time_ms(args.until, "--until"),
            page_size=args.page_size,
            page_token=page_token,
            include_history=args.history,
        )
        response = client.list_globals(request)
        return list(response.sessions), response.next_page_token, response.total_size

    sessions, token, total = _pages(fetch, args)
    counts = _branch_counts(client, sessions)
    if out.as_json:
        out.json(
            {
                "sessions": [
                    {**session_json(s, with_branches=False), "branch_count": counts[s.xid]}
                    for s in sessions
                ],
                "next_page_token": token,
                "total_size": total,
            }
        )
        return
    rows = [
        [
            s.xid,
            _status_cell(session_json(s)["status"], s.retry_stopped),
            s.application_id,
            s.transaction_name,
            _fmt_time(s.begin_time_ms),
            str(s.timeout_ms),
            "-" if counts[s.xid] is None else str(counts[s.xid]),
            str(s.retry_count),
        ]
        for s in sessions
    ]
    footer = f"{len(sessions)} of {total}" + (f"; next page: --page-token {token}" if token else "")
    if not args.history:
        # Finished transactions leave the active set at once: say where they went.
        footer += "; active transactions only, add --history for finished ones"
    columns = ["XID", "Status", "Application", "Name", "Begin", "Timeout ms", "Branches", "Retries"]
    out.table("Global transactions", columns, rows, footer)


def _branch_counts(client: Any, sessions: list[Any]) -> dict[str, int | None]:
    """Branches of each listed session (the listing carries none): one lookup
    each; None for a session deleted since the listing."""
    from atx.errors import NotFoundError

    counts: dict[str, int | None] = {}
    for session in sessions:
        try:
            counts[session.xid] = len(client.get_global(session.xid).session.branches)
        except NotFoundError:
            counts[session.xid] = None
    return counts


def _show(client: Any, args: argparse.Namespace, operator: str, out: _Output) -> None:
    from atx.tc.admin.view import lock_json, session_json

    response = client.get_global(args.xid)
    session = session_json(response.session)
    locks = [lock_json(lock) for lock in response.locks]
    if out.as_json:
        out.json({"session": session, "locks": locks})
        return
    out.console.print(f"[bold]{session['xid']}[/]  {_status_cell(session['status'])}")
    for key in ("application_id", "transaction_name", "transaction_id", "timeout_ms"):
        out.console.print(f"  {key}: {session[key]}")
    out.console.print(f"  begin: {_fmt_time(session['begin_time_ms'])}")
    out.console.print(f"  modified: {_fmt_time(session['modified_time_ms'])}")
    out.console.print(
        f"  retries: {session['retry_count']}"
        + ("  [magenta](retry stopped)[/]" if session["retry_stopped"] else "")
    )
    branch_rows = [
        [
            str(b["branch_id"]),
            b["resource_id"],
            b["branch_type"],
            b["status"],
            b["lock_keys"],
            b["application_data"],
            b["client_id"],
            _fmt_time(b["begin_time_ms"]),
        ]
        for b in session["branches"]
    ]
    columns = ["Branch", "Resource", "Type", "Status", "Lock keys", "App data", "Client", "Begin"]
    out.table("Branches", columns, branch_rows, "")
    _lock_table(out, locks, "")


def _lock_table(out: _Output, locks: list[dict[str, Any]], footer: str) -> None:
    rows = [
        [
            lock["xid"],
            str(lock["branch_id"]),
            lock["resource_id"],
            lock["table_name"],
            lock["pk"],
            _fmt_time(lock["created_time_ms"]),
        ]
        for lock in locks
    ]
    out.table("Global locks", ["XID", "Branch", "Resource", "Table", "PK", "Since"], rows, footer)


def _locks(client: Any, args: argparse.Namespace, operator: str, out: _Output) -> None:
    from atx.tc.admin.view import lock_json
    from atx.v1 import admin_pb2

    def fetch(page_token: str) -> tuple[list[Any], str, int]:
        request = admin_pb2.ListGlobalLocksRequest(
            xid=args.xid,
            resource_id=args.resource,
            table_name=args.table,
            pk=args.pk,
            page_size=args.page_size,
            page_token=page_token,
        )
        response = client.list_locks(request)
        return list(response.locks), response.next_page_token, response.total_size

    locks, token, total = _pages(fetch, args)
    data = [lock_json(lock) for lock in locks]
    if out.as_json:
        out.json({"locks": data, "next_page_token": token, "total_size": total})
        return
    footer = f"{len(locks)} of {total}" + (f"; next page: --page-token {token}" if token else "")
    _lock_table(out, data, footer)


def _audit(client: Any, args: argparse.Namespace, operator: str, out: _Output) -> None:
    from atx.tc.admin.view import audit_json
    from atx.v1 import admin_pb2

    def fetch(page_token: str) -> tuple[list[Any], str, int]:
        request = admin_pb2.ListAuditLogRequest(
            xid=args.xid, page_size=args.page_size, page_token=page_token
        )
        response = client.list_audit(request)
        return list(response.entries), response.next_page_token, 0

    entries, token, _ = _pages(fetch, args)
    data = [audit_json(e) for e in entries]
    if out.as_json:
        out.json({"entries": data, "next_page_token": token})
        return
    rows = [
        [
            _fmt_time(e["time_ms"]),
            e["operator"],
            e["action"],
            e["xid"],
            "[green]ok[/]" if e["result"] == "ok" else f"[red]{e['result']}[/]",
            e["detail"],
        ]
        for e in data
    ]
    footer = f"next page: --page-token {token}" if token else ""
    out.table("Audit log", ["Time", "Operator", "Action", "XID", "Result", "Detail"], rows, footer)


def _action(client: Any, args: argparse.Namespace, operator: str, out: _Output) -> None:
    from atx.tc.admin.view import session_json

    command = args.admin_command
    if command == "delete":
        client.delete(args.xid, args.yes, operator)
        if out.as_json:
            out.json({"deleted": args.xid})
        else:
            out.console.print(f"deleted {args.xid}; its locks are released")
        return
    if command == "rollback":
        response = client.rollback(args.xid, args.yes, operator)
    elif command == "retry":
        response = client.retry(args.xid, operator)
    elif command == "stop-retry":
        response = client.stop_retry(args.xid, operator)
    else:
        response = client.resume_retry(args.xid, operator)
    session = session_json(response.session)
    if out.as_json:
        out.json({"session": session})
        return
    stopped = "  (retry stopped)" if session["retry_stopped"] else ""
    out.console.print(f"{command}: {session['xid']} is now {session['status']}{stopped}")


def _deferred(args: argparse.Namespace, out: _Output) -> int:
    import os

    from atx.tc.admin.client import DeferredCallClient, default_admin_token
    from atx.tc.admin.view import deferred_json

    token = args.service_token
    if token is None:
        token = os.environ.get("ATX_TOKEN") or (
            args.admin_token if args.admin_token is not None else default_admin_token()
        )
    with DeferredCallClient(args.service, token) as client:
        if args.deferred_command == "retry":
            call = deferred_json(client.retry(args.id).call)
            if out.as_json:
                out.json({"call": call})
            else:
                out.console.print(f"deferred call {call['id']} is now {call['state']}")
            return 0
        calls = [
            deferred_json(c)
            for state in _deferred_states(args.state)
            for c in client.list(state, args.page_size).calls
        ]
    if out.as_json:
        out.json({"calls": calls})
        return 0
    rows = [
        [
            c["id"],
            c["xid"],
            c["target"],
            f"[red]{c['state']}[/]" if c["state"] == "Dead" else c["state"],
            str(c["attempts"]),
            c["last_error"],
            _fmt_time(c["next_attempt_ms"]),
        ]
        for c in calls
    ]
    columns = ["ID", "XID", "Target", "State", "Attempts", "Last error", "Next attempt"]
    out.table(f"Deferred calls of {args.service}", columns, rows, "")
    return 0


def _deferred_states(values: list[str]) -> list[int]:
    """The states to list, as the service's enum values; 0 lists every state."""
    from atx.tc.admin.view import parse_deferred_state

    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if any(name.lower() in ("all", "any", "every") for name in names):
        return [0]
    states = [parse_deferred_state(name) for name in names or ["dead", "pending"]]
    return list(dict.fromkeys(states))


_HANDLERS: dict[str, Callable[[Any, argparse.Namespace, str, _Output], None]] = {
    "globals": _globals,
    "show": _show,
    "locks": _locks,
    "audit": _audit,
    "retry": _action,
    "rollback": _action,
    "stop-retry": _action,
    "resume-retry": _action,
    "delete": _action,
}
