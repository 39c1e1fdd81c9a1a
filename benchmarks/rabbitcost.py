"""What RabbitMQ itself spends on a result message, by how it is published: the broker-side
half of the profile's proposal 2 (benchmarks/results/2026-12-05-rabbitmq-profile/README.md).

    python benchmarks/rabbitcost.py                    # 1,000 messages of 35,001 bytes
    python benchmarks/rabbitcost.py --messages 5000 --size 4000 --batch 16

A worker publishes its batch's results as one persistent message inside a transaction
(``tx.commit`` per batch, with the batch's acks); 1,000 points of ``original_point`` pack to
35,001 bytes. Here, with pika alone and no TTG code, on a private RabbitMQ started for the
benchmark (stopped afterwards), a durable queue receives ``--messages`` messages of ``--size``
bytes, ``--batch`` per commit, and a consumer then takes them all (prefetch 0, a multiple-ack
every 100), as the orchestrator does. Modes:
    tx-persistent        what TTG does today
    confirm-persistent   publisher confirms instead of a transaction
    tx-transient         a transaction, delivery_mode 1 (not written to the message store)
    plain-transient      neither (the floor)
Reported per message: the broker's CPU (its process tree, /proc, 10-ms ticks), this client's
CPU and the wall time; the modes run in turn, --repeats times, interleaved. Writes
outputs/bench/rabbitcost-<stamp>/rabbitcost.json (or --output-dir) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pika  # noqa: E402
from procstat import cpu_s, session_pids  # noqa: E402

from benchmarks.stamp import header, stamped_dir  # noqa: E402
from ttg_lib.cluster.brokers import start_private  # noqa: E402

MODES = ("tx-persistent", "confirm-persistent", "tx-transient", "plain-transient")


def one_mode(url: str, sid: int, mode: str, messages: int, size: int, batch: int) -> dict:
    queue = f"bench.results.{mode}"
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(queue, durable=True)
    props = pika.BasicProperties(delivery_mode=2 if mode.endswith("persistent") else 1)
    body = os.urandom(size)
    if mode.startswith("tx"):
        ch.tx_select()
    elif mode.startswith("confirm"):
        ch.confirm_delivery()
    broker0, client0, wall0 = cpu_s(session_pids(sid)), time.process_time(), time.perf_counter()
    for sent in range(1, messages + 1):
        ch.basic_publish("", queue, body, props)
        if mode.startswith("tx") and sent % batch == 0:
            ch.tx_commit()
    if mode.startswith("tx"):
        ch.tx_commit()
    published = time.perf_counter()
    taken = 0
    consumer = conn.channel()
    consumer.basic_qos(prefetch_count=0)
    for method, _props, _body in consumer.consume(queue, inactivity_timeout=30):
        if method is None:
            break
        taken += 1
        if taken % 100 == 0 or taken == messages:
            consumer.basic_ack(method.delivery_tag, multiple=True)
        if taken == messages:
            break
    consumer.cancel()
    wall = time.perf_counter() - wall0
    broker = cpu_s(session_pids(sid)) - broker0
    client = time.process_time() - client0
    consumer.queue_delete(queue)
    conn.close()
    if taken != messages:
        raise RuntimeError(f"{mode}: {taken} of {messages} messages came back")
    per = 1e6 / messages
    return {"broker_us": round(broker * per, 1), "client_us": round(client * per, 1),
            "wall_us": round(wall * per, 1),
            "publish_wall_us": round((published - wall0) * per, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000)
    parser.add_argument("--size", type=int, default=35_001, help="bytes per message")
    parser.add_argument("--batch", type=int, default=4, help="messages per transaction")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output-dir", default=str(ROOT / "outputs" / "bench"))
    args = parser.parse_args(argv)
    if min(args.messages, args.size, args.batch, args.repeats) < 1:
        print("rabbitcost.py: --messages, --size, --batch and --repeats must be at least 1",
              file=sys.stderr)
        return 2
    out = stamped_dir(args.output_dir, "rabbitcost")
    result: dict[str, Any] = {
        **header("rabbitcost.py", argv), "messages": args.messages, "size": args.size,
        "batch": args.batch, "repeats": args.repeats, "runs": {m: [] for m in MODES}}
    broker = start_private("rabbitmq")
    try:
        for repeat in range(args.repeats):
            order = MODES if repeat % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                row = one_mode(broker.url, broker.pid, mode, args.messages, args.size,
                               args.batch)
                result["runs"][mode].append(row)
                print(f"[rabbitcost] {mode}: {row}", flush=True)
    finally:
        broker.stop()
    result["load_at_end"] = os.getloadavg()
    result["median"] = {m: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
                        for m, rows in result["runs"].items()}
    (out / "rabbitcost.json").write_text(json.dumps(result, indent=2))
    print(f"\n{args.messages:,} messages of {args.size:,} bytes, {args.batch} per commit, "
          f"load at start {result['load_at_start'][0]:.2f}; medians per message:")
    print(f"{'mode':<20}{'broker us':>11}{'client us':>11}{'wall us':>10}")
    for mode, row in result["median"].items():
        print(f"{mode:<20}{row['broker_us']:>11.1f}{row['client_us']:>11.1f}"
              f"{row['wall_us']:>10.1f}")
    print(f"wrote {out / 'rabbitcost.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
