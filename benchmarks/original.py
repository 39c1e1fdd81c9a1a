"""TTG beside the original system's worker (xmedinavei/ttg-distributed-compute), the same
points, the same per-point work, the same private broker, interleaved repeats.

    python benchmarks/original.py --original /tmp/ttg-original           # 1,000,000 points
    python benchmarks/original.py --original DIR --params 20000 --repeats 1   # a smoke
    python benchmarks/original.py --original DIR --backends rabbitmq --same-chunks ''

The rows, per broker:
  headline   each system as its user runs it: the original at its own default CHUNK_SIZE
             (read from its worker.py: 100) beside `ttg run --scale large` at the preset's
             defaults (chunks of 1,000; no --chunk-size passed), launch to exit;
  same-N     both sides at chunks of N (``--same-chunks``, default 100 and 1,000), so nobody
             reads the headline as a like-for-like chunk size.
Each distinct (side, chunk size) run is made once per repeat and every row that needs it reads
it (the headline's original run is the same-100 row's). Runs alternate order between repeats.

The original is not part of this repository and nothing here builds it: give a checkout of
it with ``--original DIR`` (DIR/src/worker.py must exist). To make one:

    git clone https://github.com/xmedinavei/ttg-distributed-compute /tmp/ttg-original
    # or, from a local clone or bare mirror, without touching it:
    mkdir /tmp/ttg-original && git -C <repo> archive HEAD src | tar -x -C /tmp/ttg-original
    # or: git -C <repo> worktree add /tmp/ttg-original

Its worker needs only ``redis`` and ``pika``, which TTG's environment already has.

What runs, per broker (each on a PRIVATE broker started here on a free port and stopped
afterwards: the original uses fixed names, ``ttg:tasks``/``ttg:results`` on Redis and
``ttg.tasks``/``ttg.results``... on RabbitMQ, and deletes them, so it never meets the shared
brokers):
  original  3 processes of ``src/worker.py`` in queue mode (USE_QUEUE=true, QUEUE_BACKEND,
            WORKER_ID 0..2, TOTAL_PARAMETERS, CHUNK_SIZE, SIMULATE_WORK_MS=0, REDIS_HOST/PORT
            or RABBITMQ_HOST/PORT, as its worker reads them); worker 0 seeds the tasks. Its
            time runs from launching the processes to the moment its result stream/queue
            holds one result per chunk (polled every 20 ms, not its 30-s idle timeout); then
            its workers are stopped (SIGTERM) and its queues deleted. Its check: one result
            per chunk and the chunks' ``count`` summing to the points asked for. Its start-up
            is its own design and counts: workers 1 and 2 sleep 2 s when they find the queue
            not yet seeded (``first_result_s``, launch to first result, shows it).
  ttg       ``ttg run --scale large --compute ttg_lib.examples:original_point --total-params
            N --chunk-size C --workers 3`` on the same broker; its time runs from launching
            the command to its exit: results written to results.parquet and verified. TTG's
            own ``runtime_s`` (first task published to last result in hand) is kept beside it.
Per point both compute a sha256 of a short string and a dict (``original_point`` leaves out
the worker id and timestamp, which would make every recomputation differ). The original
keeps each chunk's dicts in memory and publishes a summary per chunk; TTG sends every
point's value back and writes it: TTG does more per point, not less.

The ratio reported is median(original time) / median(TTG time) per row and broker (the issue's
acceptance, read on the headline row: >= 2.0 on both brokers). Beside the times, each
side's CPU seconds: its processes' (wait4's rusage: the original's 3 workers; `ttg run` with
the workers it reaped) plus the private broker's over that run. On a CPU-bound machine, wall
time cannot fall below CPU / cores. Results go to
outputs/bench/original-<stamp>/ (or --output-dir): original.json (the command, TTG's commit,
the load at start and end, every run and every row) and table.txt (the printed table).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from procstat import cpu_s, session_pids  # noqa: E402

from benchmarks.stamp import (  # noqa: E402
    UsageError,
    fresh_dir,
    header,
    parse_brokers,
    stamped_dir,
)
from benchmarks.tables import text_table  # noqa: E402
from ttg_lib.backends import get_spec  # noqa: E402
from ttg_lib.cluster.brokers import PrivateBroker, start_private  # noqa: E402
from ttg_lib.config import SCALES  # noqa: E402
from ttg_lib.summary import RunSummary  # noqa: E402

COMPUTE = "ttg_lib.examples:original_point"
WORKERS = 3
REDIS_STREAMS = ("ttg:tasks", "ttg:results")  # the original's fixed names
RABBIT_QUEUES = ("ttg.tasks", "ttg.results", "ttg.tasks.retry", "ttg.tasks.dlq")
RABBIT_RESULTS = "ttg.results"


def check_original(path: str) -> Path:
    where = Path(path).expanduser().resolve()
    needed = [where / "src" / name for name in ("worker.py", "queue_utils.py",
                                                "rabbitmq_queue.py", "logging_config.py")]
    missing = [str(p.relative_to(where)) for p in needed if not p.is_file()]
    if missing:
        raise UsageError(f"--original {path}: not a checkout of xmedinavei/ttg-distributed-"
                         f"compute (missing {', '.join(missing)}); see this script's "
                         f"docstring (python benchmarks/original.py --help) for how to get one")
    return where


def original_rev(where: Path) -> str | None:
    proc = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _alive(pid: int) -> bool:
    """Running (not a zombie), without reaping it: wait4 must get its rusage later."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def reap(proc: subprocess.Popen, timeout: float) -> float:
    """Wait for a child started here (SIGKILL after ``timeout``); its CPU seconds, with those
    of the children it waited for (wait4's rusage: a ``ttg run`` and its workers)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.02)


# -- the original's queues on the private broker ------------------------------------------

class OriginalQueues:
    """Counts and resets the original's fixed-name queues, on the private broker only."""

    def __init__(self, backend: str, url: str):
        self.backend, self.url = backend, url
        if backend == "redis":
            import redis

            self.client: Any = redis.Redis.from_url(url)
        else:
            import pika

            self.connection = pika.BlockingConnection(pika.URLParameters(url))
            self.client = self.connection.channel()

    def reset(self) -> None:
        if self.backend == "redis":
            self.client.delete(*REDIS_STREAMS)
            return
        for queue in RABBIT_QUEUES:
            self.client.queue_delete(queue)
        # the result queue exists before the workers start, so it can be counted passively;
        # the original declares it the same way (durable, no arguments)
        self.client.queue_declare(RABBIT_RESULTS, durable=True)

    def results(self) -> int:
        if self.backend == "redis":
            return int(self.client.xlen(REDIS_STREAMS[1]))
        return int(self.client.queue_declare(RABBIT_RESULTS, durable=True, passive=True)
                   .method.message_count)

    def points_counted(self) -> int:
        """The sum of the chunks' ``count`` (the points each chunk's summary says it did)."""
        total = 0
        if self.backend == "redis":
            for _id, fields in self.client.xrange(REDIS_STREAMS[1], "-", "+"):
                total += json.loads(fields[b"result_data"])["count"]
            return total
        while True:
            method, _props, body = self.client.basic_get(RABBIT_RESULTS, auto_ack=True)
            if method is None:
                return total
            total += json.loads(json.loads(body)["result_data"])["count"]

    def close(self) -> None:
        if self.backend == "redis":
            self.client.close()
        else:
            self.connection.close()


def original_env(backend: str, url: str, params: int, chunk: int, worker_id: int,
                 src: Path) -> dict[str, str]:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", str(parsed.port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TTG_", "PYTHONPATH"))}
    env.update(USE_QUEUE="true", QUEUE_BACKEND=backend, WORKER_ID=str(worker_id),
               TOTAL_PARAMETERS=str(params), CHUNK_SIZE=str(chunk), SIMULATE_WORK_MS="0",
               IDLE_TIMEOUT_SECONDS="60", PYTHONPATH=str(src), PYTHONUNBUFFERED="1")
    if backend == "redis":
        env.update(REDIS_HOST=host, REDIS_PORT=port,
                   REDIS_DB=(parsed.path.strip("/") or "0"))
    else:
        env.update(RABBITMQ_HOST=host, RABBITMQ_PORT=port,
                   RABBITMQ_VHOST=unquote(parsed.path[1:]) or "/",
                   RABBITMQ_USER=parsed.username or "guest",
                   RABBITMQ_PASSWORD=parsed.password or "guest")
    return env


def run_original(where: Path, backend: str, url: str, params: int, chunk: int, out: Path,
                 repeat: int, timeout_s: float) -> dict[str, Any]:
    chunks = -(-params // chunk)
    queues = OriginalQueues(backend, url)
    queues.reset()
    logs = out / "original-logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    sinks = []
    try:
        started = time.perf_counter()
        for worker_id in range(WORKERS):
            sink = (logs / f"{backend}-r{repeat}-w{worker_id}.log").open("w")
            sinks.append(sink)
            procs.append(subprocess.Popen(
                [sys.executable, str(where / "src" / "worker.py")], stdout=sink,
                stderr=subprocess.STDOUT, cwd=where,
                env=original_env(backend, url, params, chunk, worker_id, where / "src")))
        done, first = 0, None
        while done < chunks:
            done = queues.results()
            if first is None and done:
                first = time.perf_counter() - started
            if done >= chunks:
                break
            if not any(_alive(p.pid) for p in procs):
                raise RuntimeError(f"the original's workers all exited with {done} of "
                                   f"{chunks} chunks done; see {logs}")
            if time.perf_counter() - started > timeout_s:
                raise RuntimeError(f"the original did {done} of {chunks} chunks in "
                                   f"{timeout_s:.0f} s; see {logs}")
            time.sleep(0.02)
        wall = time.perf_counter() - started
    finally:
        for proc in procs:  # only the processes started here; os.kill, as Popen's own
            if _alive(proc.pid):  # signalling reaps a dead child and its rusage with it
                os.kill(proc.pid, signal.SIGTERM)
        cpu = sum(reap(proc, 20.0) for proc in procs)  # it idles once done: CPU ~ the work's
        for sink in sinks:
            sink.close()
    counted = queues.points_counted()
    queues.reset()
    queues.close()
    return {"wall_s": round(wall, 3), "first_result_s": None if first is None else round(first, 3),
            "cpu_s": round(cpu, 2), "chunks": chunks, "points_counted": counted,
            "checked": counted == params}


def run_ttg(backend: str, url: str, params: int, sized: list[str], out: Path,
            extra: list[str]) -> dict[str, Any]:
    env = {**os.environ, get_spec(backend).url_env: url,
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p)}
    args = [sys.executable, "-m", "ttg_lib.cli", "run", "--json", "--monitor", "none",
            "--backend", backend, "--scale", "large", "--compute", COMPUTE,
            "--total-params", str(params), *sized,
            "--workers", str(WORKERS), "--output-dir", str(fresh_dir(out / "ttg")), *extra]
    with (out / "ttg.log").open("a") as log, (out / "ttg-summary.json").open("w+") as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(args, stdout=sink, stderr=log, cwd=ROOT, env=env)
        cpu = reap(proc, 3600.0)
        wall = time.perf_counter() - started
        sink.seek(0)
        text = sink.read()
    if proc.returncode != 0:
        raise RuntimeError(f"ttg run failed ({proc.returncode}); see {out / 'ttg.log'}")
    summary = RunSummary.from_dict(json.loads(text))
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 2), "runtime_s": summary.runtime_s,
            "throughput_params_s": summary.throughput_params_s,
            "verify_mode": summary.verify_mode, "checked": bool(summary.ok),
            "run_id": summary.run_id}


ORIGINAL_DEFAULT = re.compile(r"""getenv\(\s*['"]CHUNK_SIZE['"]\s*,\s*['"](\d+)['"]""")


def original_default_chunk(where: Path) -> int:
    """The original's own default CHUNK_SIZE, read from its worker's source (100 today)."""
    found = ORIGINAL_DEFAULT.findall((where / "src" / "worker.py").read_text())
    if len(found) != 1:
        raise UsageError(f"cannot read the default CHUNK_SIZE from {where}/src/worker.py "
                         f"(found {found or 'none'}); give --original-chunk")
    return int(found[0])


def parse_chunks(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UsageError(f"--same-chunks {text!r}: whole numbers, comma-separated") from None
    if any(size < 1 for size in sizes):
        raise UsageError(f"--same-chunks {text!r}: each at least 1")
    return sizes


def plan(original_chunk: int, ttg_chunk: int, same: list[int]) -> dict[str, tuple[int, int]]:
    """The rows: name -> (the original's chunk size, TTG's). The headline compares each system
    at its own default; each same-size row runs both sides at one chunk size."""
    rows = {"headline": (original_chunk, ttg_chunk)}
    rows.update({f"same-{size}": (size, size) for size in same})
    return rows


def runs_of(rows: dict[str, tuple[int, int]]) -> list[tuple[str, int]]:
    """The distinct (side, chunk size) runs the rows need: a run two rows share is made once
    per repeat, so both rows read the same measurement."""
    needed: list[tuple[str, int]] = []
    for original, ttg in rows.values():
        for run in (("original", original), ("ttg", ttg)):
            if run not in needed:
                needed.append(run)
    return needed


def summarise(rows: dict[str, tuple[int, int]],
              measured: dict[tuple[str, int], list[dict[str, Any]]]) -> dict[str, Any]:
    """Per row: each side's median wall and CPU (its processes plus the broker's), the ratio
    original ÷ TTG launch to exit, and beside it on TTG's own runtime_s."""
    out: dict[str, Any] = {}
    for name, (original_chunk, ttg_chunk) in rows.items():
        original = measured[("original", original_chunk)]
        ttg = measured[("ttg", ttg_chunk)]
        o_wall = statistics.median(r["wall_s"] for r in original)
        t_wall = statistics.median(r["wall_s"] for r in ttg)
        t_runtime = statistics.median(r["runtime_s"] for r in ttg)
        out[name] = {
            "original_chunk": original_chunk, "ttg_chunk": ttg_chunk,
            "original_wall_s_median": o_wall, "ttg_wall_s_median": t_wall,
            "ttg_runtime_s_median": t_runtime, "ratio": round(o_wall / t_wall, 3),
            "ratio_ttg_runtime": round(o_wall / t_runtime, 3),
            "cpu_s_median": {
                "original": statistics.median(r["cpu_s"] + r["broker_cpu_s"] for r in original),
                "ttg": statistics.median(r["cpu_s"] + r["broker_cpu_s"] for r in ttg)},
            "all_checked": all(r["checked"] for r in (*original, *ttg))}
    return out


def compare(where: Path, backend: str, args: argparse.Namespace, out: Path,
            rows: dict[str, tuple[int, int]], ttg_default: int) -> dict[str, Any]:
    broker: PrivateBroker = start_private(backend)
    print(f"[original] {backend}: private broker at {broker.url}", flush=True)
    runs = runs_of(rows)
    measured: dict[tuple[str, int], list[dict[str, Any]]] = {run: [] for run in runs}
    timeout = max(120.0, args.params / 2_000)
    try:
        for repeat in range(args.repeats):
            for side, chunk in (runs if repeat % 2 == 0 else runs[::-1]):
                before = cpu_s(session_pids(broker.pid))
                if side == "original":
                    row = run_original(where, backend, broker.url, args.params, chunk, out,
                                       repeat, timeout)
                else:  # the preset's own chunk size is not passed: TTG as its user runs it
                    sized = [] if chunk == ttg_default else ["--chunk-size", str(chunk)]
                    row = run_ttg(backend, broker.url, args.params, sized, out, args.ttg_flag)
                row.update(side=side, chunk_size=chunk, repeat=repeat,
                           broker_cpu_s=round(cpu_s(session_pids(broker.pid)) - before, 2))
                measured[(side, chunk)].append(row)
                print(f"[original] {backend} repeat {repeat + 1} {side} chunk {chunk}: "
                      f"{row['wall_s']:.2f} s, CPU {row['cpu_s']:.2f} s + broker "
                      f"{row['broker_cpu_s']:.2f} s (checked: {row['checked']})", flush=True)
    finally:
        broker.stop()
    summary = summarise(rows, measured)
    return {"runs": [r for rs in measured.values() for r in rs], "rows": summary,
            "all_checked": all(r["all_checked"] for r in summary.values())}


def table(result: dict[str, Any]) -> str:
    """The printed table: the headline first, the same-chunk-size rows beside it."""
    lines = [f"{result['params']:,} points, {WORKERS} workers, {result['repeats']} interleaved "
             f"repeats, load at start {result['load_at_start'][0]:.2f}, TTG "
             f"{result['ttg_commit'] or '?'}",
             "headline: the original at its own default CHUNK_SIZE "
             f"({result['original_default_chunk']}) beside `ttg run --scale large` at its "
             f"defaults (chunks of {result['ttg_default_chunk']}), launch to exit"]
    lines += text_table(
        ["broker", "row", "chunks o/TTG", "original s", "TTG s", "ratio", "TTG runtime_s",
         "ratio (runtime)", "CPU s: original", "TTG"],
        [[backend, name, f"{row['original_chunk']}/{row['ttg_chunk']}",
          *(f"{figure:.2f}" for figure in (
              row["original_wall_s_median"], row["ttg_wall_s_median"], row["ratio"],
              row["ttg_runtime_s_median"], row["ratio_ttg_runtime"],
              row["cpu_s_median"]["original"], row["cpu_s_median"]["ttg"]))]
         for backend, data in result["backends"].items()
         for name, row in data["rows"].items()], align="<<" + ">" * 8)
    return "\n".join(lines)


def ttg_commit() -> str | None:
    proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", required=True, metavar="DIR",
                        help="a checkout of xmedinavei/ttg-distributed-compute")
    parser.add_argument("--original-rev", default=None,
                        help="the original's commit, recorded in the result (read from DIR "
                        "when it is a git checkout)")
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--original-chunk", type=int, default=None, metavar="N",
                        help="the original's chunk size in the headline (default: its own "
                        "default CHUNK_SIZE, read from its worker.py)")
    parser.add_argument("--same-chunks", default="100,1000", metavar="N,N",
                        help="the same-chunk-size rows, both sides at each (default 100,1000;"
                        " '' for none)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="redis,rabbitmq")
    parser.add_argument("--ttg-flag", action="append", default=[], metavar="FLAG",
                        help="an extra `ttg run` argument (repeatable), e.g. --ttg-flag=--verify"
                        " --ttg-flag=full")
    parser.add_argument("--output-dir", default=str(ROOT / "outputs" / "bench"))
    args = parser.parse_args(argv)
    ttg_default = SCALES["large"].chunk_size
    try:
        where = check_original(args.original)
        backends = parse_brokers(args.backends)
        if args.params < 1 or args.repeats < 1:
            raise UsageError("--params and --repeats must be at least 1")
        original_chunk = args.original_chunk or original_default_chunk(where)
        if original_chunk < 1:
            raise UsageError("--original-chunk must be at least 1")
        rows = plan(original_chunk, ttg_default, parse_chunks(args.same_chunks))
    except UsageError as exc:
        print(f"original.py: {exc}", file=sys.stderr)
        return 2
    out = stamped_dir(args.output_dir, "original")
    result: dict[str, Any] = {
        **header("original.py", argv), "ttg_commit": ttg_commit(),
        "original_rev": args.original_rev or original_rev(where), "params": args.params,
        "original_default_chunk": original_chunk, "ttg_default_chunk": ttg_default,
        "rows": {name: {"original_chunk": o, "ttg_chunk": t} for name, (o, t) in rows.items()},
        "workers": WORKERS, "repeats": args.repeats, "ttg_flags": args.ttg_flag,
        "backends": {}}
    for backend in backends:
        result["backends"][backend] = compare(where, backend, args, out, rows, ttg_default)
        (out / "original.json").write_text(json.dumps(result, indent=2))
    result["load_at_end"] = os.getloadavg()
    (out / "original.json").write_text(json.dumps(result, indent=2))
    text = table(result)
    (out / "table.txt").write_text(text + "\n")
    print("\n" + text)
    print(f"wrote {out / 'original.json'} and {out / 'table.txt'}")
    unchecked = [b for b, r in result["backends"].items() if not r["all_checked"]]
    if unchecked:
        print(f"original.py: results not checked on {', '.join(unchecked)}", file=sys.stderr)
    return 1 if unchecked else 0


if __name__ == "__main__":
    sys.exit(main())
