"""Micro-measurements behind the README's prose figures (the table comes from bench.py).

    python benchmarks/micro.py                     # all four, JSON + summary.md
    python benchmarks/micro.py --only pack,packer  # a subset

pack     packing a 1,000-value chunk into a result frame's int64 payload (messages.pack_values)
packer   redis-py packing one XADD of a 500 KB result frame: hiredis's packer (copies the
         argument into one buffer) vs the pure-Python one TTG uses (sends it as is)
pika     RabbitMQ's own CPU per message published, delivered and acked, with pika alone (no
         TTG code); on a broker shared with other clients this is an upper bound
monitor  CPU of a `ttg monitor` process refreshing every 0.1 s and every 1 s, % of one core

Results go to outputs/micro/<stamp>/micro.json and summary.md; the brokers are the ones
TTG_REDIS_URL / TTG_RABBITMQ_URL name.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402
from brokercpu import broker_pid, process_cpu_s  # noqa: E402

from benchmarks.tables import md_table, publish  # noqa: E402
from ttg_lib.backends import env_urls  # noqa: E402
from ttg_lib.compute import placeholder  # noqa: E402
from ttg_lib.messages import pack_values  # noqa: E402

PARTS = ("pack", "packer", "pika", "monitor")


def _best_us(fn, repeats: int = 7, number: int = 200) -> float:
    """Median over ``repeats`` of the mean time of ``number`` calls, in microseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(times)


def measure_pack() -> dict[str, Any]:
    values = [placeholder(p, 0.0) for p in range(1_000)]
    return {"values": len(values), "us": _best_us(lambda: pack_values(values))}


def measure_packer() -> dict[str, Any]:
    from redis.connection import Encoder, HiredisRespSerializer, PythonRespSerializer

    frame = os.urandom(500_000)
    args = ("XADD", "ttg:results", "*", "r", frame)
    python = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)
    hiredis = HiredisRespSerializer()
    return {"frame_bytes": len(frame),
            "hiredis_ms": _best_us(lambda: hiredis.pack(*args), number=50) / 1000,
            "python_ms": _best_us(lambda: python.pack(*args), number=50) / 1000}


def measure_pika(messages: int = 5_000) -> dict[str, Any]:
    """Publish, consume and ack ``messages`` on a server-named exclusive queue (the broker
    deletes it with the connection), and read the broker's CPU before and after."""
    import pika

    url = env_urls()["rabbitmq"]
    pid = broker_pid("rabbitmq", url)
    body = b"x" * 200  # about a task message's size
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.confirm_delivery()
        channel.basic_qos(prefetch_count=100)
        got = 0

        def on_message(ch: Any, method: Any, _props: Any, _body: bytes) -> None:
            nonlocal got
            got += 1
            ch.basic_ack(method.delivery_tag)

        channel.basic_consume(queue, on_message)
        before, wall = process_cpu_s(pid), time.perf_counter()
        for _ in range(messages):
            channel.basic_publish("", queue, body)
        while got < messages:
            connection.process_data_events(time_limit=1)
        after, wall = process_cpu_s(pid), time.perf_counter() - wall
    finally:
        connection.close()
    broker_us = None if before is None or after is None else (after - before) / messages * 1e6
    return {"messages": messages, "broker_cpu_us_per_message": broker_us,
            "wall_us_per_message": wall / messages * 1e6,
            "note": "confirmed publish + delivery + ack; the broker's whole-process CPU"}


def measure_monitor(seconds: float = 10.0) -> dict[str, Any]:
    """`ttg monitor` for ``seconds`` at each interval, rendering as on a terminal."""
    out: dict[str, Any] = {}
    for backend in ("redis", "rabbitmq"):
        for interval in (0.1, 1.0):
            proc = subprocess.Popen(
                [sys.executable, "-m", "ttg_lib.cli", "monitor", "--backend", backend,
                 "--interval", str(interval)], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, cwd=ROOT,
                env={**os.environ, "TTY_INTERACTIVE": "1", "TTY_COMPATIBLE": "1"})
            try:
                time.sleep(3.0)  # start-up (imports, first connection) is not the steady cost
                before, wall = process_cpu_s(proc.pid), time.perf_counter()
                time.sleep(seconds)  # measuring a steady state over a fixed window
                after, wall = process_cpu_s(proc.pid), time.perf_counter() - wall
            finally:
                proc.terminate()
                proc.wait(10)
            share = None if before is None or after is None else (after - before) / wall * 100
            out[f"{backend}@{interval:g}s"] = {"core_percent": share, "window_s": seconds}
    return out


def markdown(results: dict[str, Any]) -> str:
    m, r = results["machine"], results["parts"]
    lines = [f"Measured {m['when']} on {m['cores']} cores, Python {m['python']}, "
             f"Redis {m['brokers'].get('redis')}, RabbitMQ {m['brokers'].get('rabbitmq')} "
             f"with `python benchmarks/micro.py`.", "", *md_table(["what", "value"])]
    if "pack" in r:
        lines.append(f"| packing {r['pack']['values']:,} values into int64 | "
                     f"{r['pack']['us']:.1f} µs |")
    if "packer" in r:
        p = r["packer"]
        lines.append(f"| packing an XADD of a {p['frame_bytes'] // 1000} KB frame: hiredis / "
                     f"pure Python | {p['hiredis_ms']:.3f} ms / {p['python_ms']:.3f} ms |")
    if "pika" in r:
        p = r["pika"]
        cpu = p["broker_cpu_us_per_message"]
        lines.append(f"| RabbitMQ CPU per message published, delivered and acked (pika alone) | "
                     f"{'n/a' if cpu is None else f'{cpu:.0f} µs'} |")
    for key, row in r.get("monitor", {}).items():
        share = row["core_percent"]
        lines.append(f"| `ttg monitor` on {key.replace('@', ' every ')}: CPU | "
                     f"{'n/a' if share is None else f'{share:.1f} % of a core'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma list of {PARTS}")
    parser.add_argument("--output-dir", default=str(ROOT / "outputs" / "micro"))
    args = parser.parse_args(argv)
    parts = args.only.split(",")
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}; allowed: {', '.join(PARTS)}")
    out = Path(args.output_dir) / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "parts": {}}
    for part in parts:
        results["parts"][part] = globals()[f"measure_{part}"]()
        print(f"{part}: {results['parts'][part]}", flush=True)
    (out / "micro.json").write_text(json.dumps(results, indent=2))
    publish(out, markdown(results), out / "micro.json")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
