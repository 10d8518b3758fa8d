#!/usr/bin/env python3
"""Send an NDJSON file through the Celery chain (tasks.py) in messages of B rows and time it.

usage: driver.py INPUT.ndjson B MESSAGES one|all CHAIN OUTPUT
  one: a message at a time (send the chain, wait for its result, then the next): the paper's
       way of measuring a method's service time;
  all: every message sent at once, the results collected in order (throughput).
prints: messages seconds ms_per_message rows_out
"""
import sys
import time

from celery import chain as celery_chain

import tasks


def main():
    path, b, messages, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    steps = [tasks.STEPS[s] for s in sys.argv[5].split(",")]
    out = sys.argv[6]
    with open(path) as f:
        lines = [next(f) for _ in range(b * messages)]
    batches = [lines[i:i + b] for i in range(0, len(lines), b)]

    def send(batch):
        return celery_chain(tasks.prepare.s(batch), *[s.s() for s in steps], tasks.result.s()).apply_async()

    # the connection pool warmed up outside the timing
    send(batches[0]).get(timeout=300)
    rows = 0
    t0 = time.perf_counter()
    with open(out, "w") as o:
        if mode == "one":
            for batch in batches:
                r = send(batch).get(timeout=300)
                o.write(r)
                rows += r.count("\n")
        else:
            pending = [send(batch) for batch in batches]
            for p in pending:
                # polled: with many chains outstanding, get()'s pub/sub wait on the Redis result
                # backend was seen to miss a result stored meanwhile and wait for ever
                deadline = time.monotonic() + 600
                while not p.ready():
                    if time.monotonic() > deadline:
                        raise TimeoutError("no result in 600 s")
                    time.sleep(0.0005)
                r = p.get(timeout=600)
                o.write(r)
                rows += r.count("\n")
    dt = time.perf_counter() - t0
    print(f"{len(batches)} {dt:.4f} {dt / len(batches) * 1e3:.3f} {rows}")


if __name__ == "__main__":
    main()
