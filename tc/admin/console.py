"""``atx console``: the admin web console.

A small HTTP server serves the static page (``tc/admin/static``) and a JSON
API that calls the TC's AdminService over gRPC with the admin token the
browser sends (``Authorization: Bearer <token>``). The stdlib
``http.server`` is enough for a handful of admins and keeps the console free
of a web framework dependency; the page is plain JS, so nothing is built at
install time.

Without the token (when the console or the TC needs one) the API answers 401
and the page asks for it. Writes need ``Content-Type: application/json``,
which a cross-site form cannot send without a CORS preflight we never grant.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["ConsoleServer", "add_arguments", "run"]

logger = logging.getLogger(__name__)

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
_HTTP_BY_GRPC = {
    "INVALID_ARGUMENT": HTTPStatus.BAD_REQUEST,
    "NOT_FOUND": HTTPStatus.NOT_FOUND,
    "FAILED_PRECONDITION": HTTPStatus.CONFLICT,
    "UNAUTHENTICATED": HTTPStatus.UNAUTHORIZED,
    "PERMISSION_DENIED": HTTPStatus.FORBIDDEN,
    "UNAVAILABLE": HTTPStatus.BAD_GATEWAY,
    "DEADLINE_EXCEEDED": HTTPStatus.GATEWAY_TIMEOUT,
}
_ACTIONS = ("retry", "rollback", "stop-retry", "resume-retry", "delete")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tc", default=None, metavar="ADDR", help="TC address ($ATX_TC_ADDRESS, 127.0.0.1:8091)"
    )
    parser.add_argument(
        "--admin-token",
        default=None,
        help="require this token from the browser and pass it to the TC ($ATX_ADMIN_TOKEN)",
    )
    parser.add_argument(
        "--tls-ca",
        default=None,
        metavar="PATH",
        help="PEM CA bundle: talk TLS to the TC ($ATX_TC_TLS_CA; empty = plaintext)",
    )
    parser.add_argument(
        "--tls-server-name",
        default="",
        metavar="NAME",
        help="host name the TC's certificate carries, when not the --tc host",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7091, help="HTTP port (default 7091)")


def run(args: argparse.Namespace) -> int:
    from atx.tc.admin.client import default_admin_token, default_tc_address, default_tls_ca

    token = args.admin_token if args.admin_token is not None else default_admin_token()
    server = ConsoleServer(
        args.tc or default_tc_address(),
        token,
        args.host,
        args.port,
        tls_ca=args.tls_ca if args.tls_ca is not None else default_tls_ca(),
        tls_server_name=args.tls_server_name,
    )
    logger.info(
        "admin console for TC %s on http://%s:%d/", server.tc_address, args.host, server.port
    )
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


class ConsoleServer:
    """The console's HTTP server; ``start()`` runs it in a thread."""

    def __init__(
        self,
        tc_address: str,
        admin_token: str,
        host: str,
        port: int,
        tls_ca: str = "",
        tls_server_name: str = "",
    ) -> None:
        from atx.tc.admin.client import AdminClient

        self.tc_address = tc_address
        self.admin_token = admin_token
        self.client = AdminClient(tc_address, tls_ca=tls_ca, tls_server_name=tls_server_name)
        console = self

        class Handler(_Handler):
            server_ref = console

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port: int = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self.port

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
        self.httpd.server_close()
        self.client.close()


class _ApiError(Exception):
    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _Handler(BaseHTTPRequestHandler):
    server_ref: ConsoleServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("console %s " + format, self.address_string(), *args)

    # --- plumbing -----------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value: object) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _token(self) -> str:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    def _authorized_token(self) -> str:
        token = self._token()
        required = self.server_ref.admin_token
        if required and not hmac.compare_digest(token.encode(), required.encode()):
            raise _ApiError(
                HTTPStatus.UNAUTHORIZED,
                "UNAUTHENTICATED",
                "the console needs the admin token" if not token else "wrong admin token",
            )
        return token

    def _api(self, method: str) -> None:
        from atx.errors import AtxError

        try:
            parts = urlsplit(self.path)
            query = {k: v for k, v in parse_qs(parts.query).items()}
            token = self._authorized_token()
            if method == "POST":
                body = self._body()
                result = _post(self.server_ref, parts.path, body, token)
            else:
                result = _get(self.server_ref, parts.path, query, token)
            self._json(HTTPStatus.OK, result)
        except _ApiError as error:
            self._json(error.status, {"error": {"code": error.code, "message": error.message}})
        except AtxError as error:
            status = _HTTP_BY_GRPC.get(error.grpc_code.name, HTTPStatus.INTERNAL_SERVER_ERROR)
            self._json(
                status,
                {"error": {"code": error.code, "message": error.message, "details": error.details}},
            )

    def _body(self) -> dict[str, Any]:
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            raise _ApiError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "INVALID_ARGUMENT",
                "send the request as application/json",
            )
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "INVALID_ARGUMENT", "malformed JSON") from None
        if not isinstance(body, dict):
            raise _ApiError(HTTPStatus.BAD_REQUEST, "INVALID_ARGUMENT", "expected a JSON object")
        return body

    # --- verbs ----------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/api/"):
            self._api("GET")
            return
        if path == "/healthz":
            self._json(HTTPStatus.OK, {"status": "ok"})
            return
        static = _STATIC.get(path)
        if static is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": {"code": "NOT_FOUND", "message": path}})
            return
        name, content_type = static
        body = resources.files("atx.tc.admin").joinpath("static", name).read_bytes()
        self._send(HTTPStatus.OK, body, content_type)

    def do_POST(self) -> None:
        if urlsplit(self.path).path.startswith("/api/"):
            self._api("POST")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": {"code": "NOT_FOUND", "message": "POST"}})


# --- the JSON API -------------------------------------------------------------------------


def _one(query: dict[str, list[str]], key: str) -> str:
    values = query.get(key)
    return values[-1] if values else ""


def _int(query: dict[str, list[str]], key: str) -> int:
    text = _one(query, key)
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise _ApiError(
            HTTPStatus.BAD_REQUEST, "INVALID_ARGUMENT", f"{key} must be an integer, got {text!r}"
        ) from None


def _get(console: ConsoleServer, path: str, query: dict[str, list[str]], token: str) -> object:
    from atx.tc.admin.view import audit_json, lock_json, parse_global_status, session_json
    from atx.v1 import admin_pb2, types_pb2

    client = console.client
    if path == "/api/info":
        return {"tc": console.tc_address}
    if path == "/api/globals":
        statuses = [
            types_pb2.GlobalStatus.ValueType(int(parse_global_status(part)))
            for value in query.get("status", [])
            for part in value.split(",")
            if part.strip()
        ]
        response = client.list_globals(
            admin_pb2.ListGlobalSessionsRequest(
                statuses=statuses,
                application_id=_one(query, "application_id"),
                transaction_name=_one(query, "transaction_name"),
                xid=_one(query, "xid"),
                begin_time_from_ms=_int(query, "since"),
                begin_time_to_ms=_int(query, "until"),
                include_history=_one(query, "history") in ("1", "true"),
                page_size=_int(query, "page_size"),
                page_token=_one(query, "page_token"),
            ),
            token,
        )
        return {
            "sessions": [session_json(s, with_branches=False) for s in response.sessions],
            "next_page_token": response.next_page_token,
            "total_size": response.total_size,
        }
    if path.startswith("/api/globals/"):
        xid = unquote(path[len("/api/globals/") :])
        detail = client.get_global(xid, token)
        return {
            "session": session_json(detail.session),
            "locks": [lock_json(lock) for lock in detail.locks],
        }
    if path == "/api/locks":
        locks = client.list_locks(
            admin_pb2.ListGlobalLocksRequest(
                xid=_one(query, "xid"),
                resource_id=_one(query, "resource_id"),
                table_name=_one(query, "table_name"),
                pk=_one(query, "pk"),
                page_size=_int(query, "page_size"),
                page_token=_one(query, "page_token"),
            ),
            token,
        )
        return {
            "locks": [lock_json(lock) for lock in locks.locks],
            "next_page_token": locks.next_page_token,
            "total_size": locks.total_size,
        }
    if path == "/api/audit":
        audit = client.list_audit(
            admin_pb2.ListAuditLogRequest(
                xid=_one(query, "xid"),
                page_size=_int(query, "page_size"),
                page_token=_one(query, "page_token"),
            ),
            token,
        )
        return {
            "entries": [audit_json(e) for e in audit.entries],
            "next_page_token": audit.next_page_token,
        }
    raise _ApiError(HTTPStatus.NOT_FOUND, "NOT_FOUND", f"no API at {path}")


def _post(console: ConsoleServer, path: str, body: dict[str, Any], token: str) -> object:
    from atx.tc.admin.view import session_json

    prefix = "/api/globals/"
    xid, _, action = (
        path[len(prefix) :].rpartition("/") if path.startswith(prefix) else ("", "", "")
    )
    if not xid or action not in _ACTIONS:
        raise _ApiError(HTTPStatus.NOT_FOUND, "NOT_FOUND", f"no action at {path}")
    xid = unquote(xid)
    operator = str(body.get("operator") or "console")
    confirm = body.get("confirm") is True
    client = console.client
    if action == "delete":
        client.delete(xid, confirm, operator, token)
        return {"deleted": xid}
    if action == "rollback":
        session = client.rollback(xid, confirm, operator, token).session
    elif action == "retry":
        session = client.retry(xid, operator, token).session
    elif action == "stop-retry":
        session = client.stop_retry(xid, operator, token).session
    else:
        session = client.resume_retry(xid, operator, token).session
    return {"session": session_json(session)}
