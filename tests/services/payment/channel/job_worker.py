"""A payment-service stand-in for the job tests: runs one job in a loop
through a JobRunner and records each run's interval in Redis.

python -m tests.services.payment.channel.job_worker REDIS_URL SECONDS
"""

from __future__ import annotations

import os
import sys
import time

from atx.shop.payment.channel import JobRunner, RedisJobLock
from atx.shop.payment.channel.redis_store import connect


def main(redis_url: str, seconds: float) -> int:
    store = connect(redis_url)
    runner = JobRunner(RedisJobLock(redis_url), lock_ttl_ms=1_500, owner=f"pid{os.getpid()}")

    def body() -> int:
        running = store.client.incr(store.key("running"))
        start = time.time()
        time.sleep(0.15)
        store.client.decr(store.key("running"))
        end = time.time()
        store.client.rpush(store.key("intervals"), f"{start}:{end}:{running}:{os.getpid()}")
        return 1

    runner.register("compensation", body, interval_s=0.05)
    runner.start()  # periodic runs race the explicit ones below
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        runner.run_now("compensation")
    runner.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2])))
