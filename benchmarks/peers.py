"""Dask and Ray as peers of TTG, measured in the same benchmark run on the same chunks.

    python benchmarks/peers.py                      # every workload, every system (minutes)
    python benchmarks/peers.py --quick              # a few seconds a workload (smoke test)
    python benchmarks/peers.py --systems dask,ttg-redis --workloads small,million
    python benchmarks/peers.py --ttg-set verify=sample --ttg-set results=true

Needs the ``bench`` extra (``pip install -e '.[bench]'``: dask[distributed], ray). Systems:
Dask (``LocalCluster``, 3 worker processes of one thread, one task per chunk), Ray
(``ray.init(num_cpus=3)``, one remote call per chunk), TTG on Redis and on RabbitMQ (3 local
workers, through ``ttg_lib.run.execute``). Workloads (``benchmarks/peer_work.py``): small
(1,000 params, chunks of 10, 100 ms each), the same with one worker process SIGKILLed when
30 % of the chunks are done, medium (10,000 params, chunks of 100, 10 ms), 10,000 chunks of 10
params at 0 ms, and 1,000,000 points (chunks of 1,000) of a function returning a small dict.

Each system runs in a driver process of its own, one after another, so its peak memory is its
own and no idle cluster competes with the system being measured. Wall time runs from the first
chunk submitted to the last result in hand; Dask's and Ray's results are then checked against
a direct recomputation, TTG checks its own (its verification). Start-up (cluster and workers
ready) is reported apart. Writes bench.json and summary.md to outputs/bench/peers-<stamp>/
and prints the table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.peer_work import WORKERS, Workload, workloads  # noqa: E402

SYSTEMS = ("dask", "ray", "ttg-redis", "ttg-rabbitmq")
NEEDS = {"dask": "distributed", "ray": "ray"}


class UsageError(ValueError):
    """A bad option; the message says what is allowed."""


def parse_settings(pairs: list[str]) -> dict[str, str]:
    """``--ttg-set key=value`` pairs, checked against RunConfig before anything starts."""
    from ttg_lib.config import ConfigError, RunConfig

    settings: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"invalid --ttg-set {pair!r}: KEY=VALUE, a RunConfig setting")
        settings[key.strip()] = value.strip()
    try:
        RunConfig.build(**settings)
    except ConfigError as exc:
        raise UsageError(f"invalid --ttg-set: {exc}") from None
    return settings


def choose(given: str, allowed: tuple[str, ...], what: str) -> list[str]:
    names = [n.strip() for n in given.split(",") if n.strip()] if given != "all" else []
    unknown = [n for n in names if n not in allowed]
    if unknown or (given != "all" and not names):
        raise UsageError(f"unknown {what} {unknown[0] if unknown else given!r}; "
                         f"allowed: {', '.join(allowed)} or all")
    return names or list(allowed)


def missing_extra(systems: list[str]) -> list[str]:
    return [s for s in systems if s in NEEDS and importlib.util.find_spec(NEEDS[s]) is None]


def run_driver(system: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One system's driver in its own process; its log (Ray and Dask are chatty) goes to
    <out>/<system>.log and its progress lines are echoed here."""
    result_file = out / f"{system}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--driver", system,
           "--workloads", ",".join(args.workload_names), "--result-file", str(result_file),
           "--output-dir", str(out)] + (["--quick"] if args.quick else []) + (
           ["--private-brokers"] if args.private_brokers else []) + (
           ["--packed-results"] if args.packed_results else [])
    for key, value in args.settings.items():
        cmd += ["--ttg-set", f"{key}={value}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1",  # workers of every system import benchmarks
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p)}
    started = time.monotonic()
    limit = driver_limit_s(args)
    with (out / f"{system}.log").open("w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, cwd=ROOT, env=env, start_new_session=True)
        # A hung system must not hang the benchmark: its driver's own process group (the
        # driver and what it started) is killed after a generous limit.
        watchdog = threading.Timer(limit, os.killpg, (proc.pid, signal.SIGKILL))
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if line.startswith("[peers]"):
                    print(line.rstrip(), flush=True)
            proc.wait()
        finally:
            watchdog.cancel()
    if proc.returncode != 0 or not result_file.exists():
        tail = (out / f"{system}.log").read_text()[-1500:]
        why = (f"killed after {limit:.0f} s" if proc.returncode == -signal.SIGKILL
               else f"driver exited with code {proc.returncode}")
        return {"error": why, "log_tail": tail}
    result = json.loads(result_file.read_text())
    result["driver_wall_s"] = round(time.monotonic() - started, 1)
    return result


def driver_limit_s(args: argparse.Namespace) -> float:
    """Ten times each workload's ideal, plus start-up and a margin per workload."""
    items = [workloads(args.quick)[n] for n in args.workload_names]
    return 300 + sum(10 * w.ideal_s(WORKERS) + 120 for w in items)


def driver_main(args: argparse.Namespace) -> int:
    from benchmarks.peer_drivers import run_peer, run_ttg

    items = [workloads(args.quick)[n] for n in args.workload_names]
    out = Path(args.output_dir)
    scratch = out / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        print(f"[peers] {time.strftime('%H:%M:%S')} {text}", flush=True)

    if args.driver.startswith("ttg-"):
        result = run_ttg(args.driver.removeprefix("ttg-"), items, scratch, args.settings, say,
                         private_broker=args.private_brokers)
    else:
        result = run_peer(args.driver, items, scratch, say, packed=args.packed_results)
    Path(args.result_file).write_text(json.dumps(result, indent=2))
    return 0


def describe(w: Workload) -> dict[str, Any]:
    return {**asdict(w), "chunks": w.chunks, "ideal_s": w.ideal_s(WORKERS)}


def machine() -> dict[str, Any]:
    versions = {}
    for dist in ("dask", "distributed", "ray", "redis", "pika"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:
            versions[dist] = None
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"cores": os.cpu_count(), "python": sys.version.split()[0],
            "platform": platform.platform(), "packages": versions, "loadavg_at_start": load,
            "when": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", default="all", help=f"comma list of {', '.join(SYSTEMS)}")
    parser.add_argument("--workloads", default="all",
                        help=f"comma list of {', '.join(workloads(False))}")
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds each")
    parser.add_argument("--ttg-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a RunConfig setting for the TTG runs (repeatable)")
    parser.add_argument("--private-brokers", action="store_true",
                        help="TTG on a Redis/RabbitMQ started for the benchmark (at its own "
                        "priority, e.g. under nice, like the peers' schedulers) instead of "
                        "TTG_REDIS_URL / TTG_RABBITMQ_URL")
    parser.add_argument("--packed-results", action="store_true",
                        help="Dask and Ray tasks return their chunk's values pickled as one "
                        "bytes object, unpickled by the driver inside the timing (Dask "
                        "otherwise serializes a list result value by value)")
    parser.add_argument("--output-dir", default=str(ROOT / "outputs" / "bench"))
    parser.add_argument("--driver", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.workload_names = choose(args.workloads, tuple(workloads(False)), "workload")
        systems = choose(args.systems, SYSTEMS, "system")
        args.settings = parse_settings(args.ttg_set)
        if args.driver:
            return driver_main(args)
        absent = missing_extra(systems)
        if absent:
            raise UsageError(f"{', '.join(absent)} not installed: pip install -e '.[bench]' "
                             f"(or leave them out with --systems)")
    except UsageError as exc:
        print(f"peers.py: {exc}", file=sys.stderr)
        return 2
    from benchmarks.peer_summary import markdown

    out = Path(args.output_dir) / f"peers-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": machine(), "quick": args.quick, "ttg_settings": args.settings,
        "private_brokers": args.private_brokers, "packed_results": args.packed_results,
        "nice": os.nice(0),
        "command": " ".join(["python", "benchmarks/peers.py", *(argv or sys.argv[1:])]),
        "workloads": {n: describe(workloads(args.quick)[n]) for n in args.workload_names},
        "systems": {}}
    for system in systems:
        print(f"[peers] == {system}", flush=True)
        results["systems"][system] = run_driver(system, args, out)
        (out / "bench.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "summary.md").write_text(table)
    print("\n" + table)
    print(f"wrote {out / 'bench.json'} and {out / 'summary.md'}")
    failed = [s for s, r in results["systems"].items() if "error" in r
              or any("error" in w or not w.get("checked") for w in r["workloads"].values())]
    if failed:
        print(f"peers.py: failed or unchecked results for {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
