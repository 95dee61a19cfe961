"""A bare RQ worker for the raw limits: ``python -m bench.rqworker --class simple|fork``.

In burst mode it prints, as JSON on its last line, how long the worker took to
drain the queue, and its own peak memory."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import redis
from rq import Queue, SimpleWorker, Worker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--class", dest="cls", choices=["simple", "fork"], default="simple")
    parser.add_argument("--queue", default="bench")
    parser.add_argument("--burst", action="store_true")
    args = parser.parse_args()
    conn = redis.Redis.from_url(os.environ["REDIS_URL"])
    base = SimpleWorker if args.cls == "simple" else Worker

    class Burst(base):
        """No pub/sub channel (a burst worker here takes no remote command): with redis-py
        8 and RQ 3 its teardown can wait out a whole 60 s poll when the worker ends
        before its subscription is confirmed, which once made a raw row read 0.3 jobs/s."""

        def subscribe(self):
            self.pubsub_thread = None

        def unsubscribe(self):
            pass

    worker = Burst([Queue(args.queue, connection=conn)], connection=conn)
    started_at = time.time()
    started = time.perf_counter()
    worker.work(burst=args.burst, logging_level="WARNING")
    seconds = time.perf_counter() - started
    peak = None
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    print(json.dumps({"seconds": seconds, "started": started_at, "ended": time.time(),
                      "peak_rss_mb": peak}), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
