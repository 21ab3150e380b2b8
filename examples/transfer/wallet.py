"""Service B, the wallet: credits a wallet inside the caller's global transaction.

    python examples/transfer/wallet.py --port 50062 --db URL --tc 127.0.0.1:8091

What a callee needs, beyond the caller's @rm.global_transactional: its own
rm.configure, its database as an rm resource with an undo_log table, a primary
key on every table it changes, and rm.XidServerInterceptor() on its server.
"""

from __future__ import annotations

import argparse
import signal
from concurrent import futures

import grpc
from common import Database, Message, json_service

import atx.rm as rm

# AT images rows and takes global locks by primary key: every table it changes needs one.
SCHEMA = "CREATE TABLE wallets (id VARCHAR(32) PRIMARY KEY, balance INT NOT NULL)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True, help="mysql://... or sqlite:///path")
    parser.add_argument("--tc", required=True, help="the TC's host:port")
    args = parser.parse_args()

    rm.configure(tc_addresses=[args.tc], application_id="wallet")  # the callee's own
    wallet_db = Database(args.db, resource_id="wallet-db")
    wallet_db.run(SCHEMA, "INSERT INTO wallets (id, balance) VALUES ('bob', 0)")

    def credit(request: Message, context: grpc.ServicerContext) -> Message:
        # XidServerInterceptor has bound the caller's XID: this is its second branch.
        conn = wallet_db.pool.connect()  # a pooled proxy, this thread's until close()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    wallet_db.sql("UPDATE wallets SET balance = balance + %s WHERE id = %s"),
                    (request["amount"], request["wallet"]),
                )
                if cur.rowcount != 1:
                    context.abort(grpc.StatusCode.NOT_FOUND, f"no wallet {request['wallet']!r}")
            conn.commit()  # phase one of this branch: undo row + registration under the XID
        finally:
            conn.close()  # back to the pool
        return {"xid": rm.current_xid()}

    def balances(request: Message, context: grpc.ServicerContext) -> Message:
        return dict(wallet_db.rows("SELECT id, balance FROM wallets ORDER BY id"))

    # Threaded: each request's thread takes its own proxy from the pool; the interceptor
    # binds the caller's XID (gRPC metadata tx_xid) around every handler call.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8), interceptors=[rm.XidServerInterceptor()]
    )
    server.add_generic_rpc_handlers(
        [json_service("Wallet", {"Credit": credit, "Balances": balances})]
    )
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(grace=2.0))
    server.wait_for_termination()
    wallet_db.pool.dispose()
    rm.shutdown()  # flushes queued undo-row deletes


if __name__ == "__main__":
    main()
