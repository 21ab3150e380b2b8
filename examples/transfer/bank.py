"""Service A, the bank: a transfer to a wallet is one global transaction over both databases.

    python examples/transfer/bank.py --port 50061 --db URL --tc 127.0.0.1:8091 \
        --wallet 127.0.0.1:50062

Transfer debits a bank account here and credits the wallet over gRPC; the
channel carries the XID (rm.XidClientInterceptor), so the wallet's update is a
branch of the same global transaction. An exception rolls back both.
"""

from __future__ import annotations

import argparse
import signal
from concurrent import futures

import grpc
from common import Database, Message, call, json_service

import atx.rm as rm

SCHEMA = "CREATE TABLE accounts (id VARCHAR(32) PRIMARY KEY, balance INT NOT NULL)"


class InsufficientFunds(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True, help="mysql://... or sqlite:///path")
    parser.add_argument("--tc", required=True, help="the TC's host:port")
    parser.add_argument("--wallet", required=True, help="the wallet service's host:port")
    args = parser.parse_args()

    rm.configure(tc_addresses=[args.tc], application_id="bank")
    bank_db = Database(args.db, resource_id="bank-db")
    bank_db.run(SCHEMA, "INSERT INTO accounts (id, balance) VALUES ('alice', 100)")
    wallet = grpc.intercept_channel(grpc.insecure_channel(args.wallet), rm.XidClientInterceptor())

    @rm.global_transactional(name="transfer", timeout=30.0)
    def transfer(account: str, to_wallet: str, amount: int) -> str:
        conn = bank_db.pool.connect()  # a pooled proxy, this thread's until close()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    bank_db.sql("UPDATE accounts SET balance = balance - %s WHERE id = %s"),
                    (amount, account),
                )
                cur.execute(bank_db.sql("SELECT balance FROM accounts WHERE id = %s"), (account,))
                (balance,) = cur.fetchone()
            conn.commit()  # phase one of this branch: undo row + branch registration
        finally:
            conn.close()  # back to the pool
        call(wallet, "Wallet", "Credit", {"wallet": to_wallet, "amount": amount})  # 2nd branch
        if balance < 0:  # checked last, so that both databases have changed: both are undone
            raise InsufficientFunds(f"{account} would have {balance}")
        return rm.current_xid() or ""

    def transfer_rpc(request: Message, context: grpc.ServicerContext) -> Message:
        try:
            xid = transfer(request["account"], request["wallet"], request["amount"])
        except InsufficientFunds as error:  # rolled back before it got here
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"rolled back: {error}")
        except grpc.RpcError as error:  # the wallet failed: rolled back too
            context.abort(error.code(), f"rolled back: the wallet said {error.details()}")
        return {"xid": xid}

    def balances(request: Message, context: grpc.ServicerContext) -> Message:
        return dict(bank_db.rows("SELECT id, balance FROM accounts ORDER BY id"))

    # Threaded: each request's thread takes its own proxy from the pool. The bank begins
    # the global transactions, so it needs no XidServerInterceptor (the wallet does).
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers(
        [json_service("Bank", {"Transfer": transfer_rpc, "Balances": balances})]
    )
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(grace=2.0))
    server.wait_for_termination()
    bank_db.pool.dispose()
    rm.shutdown()


if __name__ == "__main__":
    main()
