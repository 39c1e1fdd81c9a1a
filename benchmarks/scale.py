"""The scale series: 10^6, 10^7 and 10^8 points in one invocation, each with its runtime,
points/s, orchestrator peak RSS, broker memory and the record's size on disk; then reading
slices of the largest table back, with the reader's peak RSS.

    python benchmarks/scale.py --read-back                  # 1e6,1e7,1e8 on both brokers
    python benchmarks/scale.py --sizes 1e5,1e6 --backends redis --read-back   # a smoke
    python benchmarks/scale.py --total 1000000000           # the 10^9 run (Redis), read back
    python benchmarks/scale.py --read-back-only outputs/runs/<run>/results.parquet

Each size is one ``ttg run --scale large --total-params N --chunk-size C --verify sample
--workers 3`` (a trivial function, ``ttg_lib.compute:placeholder``, unless --compute) on a
private broker started for that run alone (a fresh Redis or RabbitMQ on a free port, stopped
afterwards), so the broker's figures are this run's: Redis ``INFO used_memory_peak`` and,
for both, the broker's whole process tree's RSS sampled every 0.1 s (its peak: RabbitMQ's
process memory) and its CPU seconds. From the run's summary: ``runtime_s`` (first task
published to last result in hand), points/s, orchestrator and worker peak RSS; the process's
wall time (launch to exit, with start-up, writing and verification) beside it, split at the
last result read: ``startup_s`` (launch to the first task), ``close_s`` (last result to exit) and
of that ``table_s`` (last result to results.parquet in place). On disk:
results.parquet and the whole record directory. Before the first run the script refuses to
start (exit 2, one line) when the disk under --output-dir has less free space than the
series needs: every record kept (16 bytes a point, a bound: 10^6 points take 14) plus the
largest once more (its parts and its merged table are both on disk while it is written).

--total N is the billion-point mode: one run of N points (Redis unless --backends), then
its table read back, then the disk it used printed.

--read-back (the largest table of the series, or --read-back-only FILE) reads it these
ways, each in a fresh process whose peak RSS (``ru_maxrss``) is reported (``baseline``: the
same process reading nothing, its imports alone, to subtract):
  slice     ``load_results(run, columns=["param_id", value], filters=[param_id in the
            middle 1 % of the ids, 10^6 at most])`` (DNF): a column slice and a filter
  filter    ``load_results(run, filters=<a pyarrow.compute expression>)``: every column of
            the rows with param_id in the middle 0.1 % of the ids
  notebook  the notebook's Results section: its table and its chart (a table over 2*10^6
            rows streamed through the sampler, never loaded)
  scan      one column streamed a batch at a time (a sum): constant memory
  export    ``ttg results FILE --format csv --out /dev/null`` (the streaming export; of a
            table over 10^8 rows, its first 10^8: all 10^9 would take most of an hour)
  export-slice  ``ttg results FILE --format jsonl --columns param_id,VALUE --where ...``
Each row says which of issue 23's targets held (``holds``): every row kept, runtime under 15
minutes, orchestrator under 300 MiB, broker under 200 MB; each read under 1 GiB. The exit
code is 1 when one did not, or a run failed.
Writes outputs/bench/scale-<stamp>/scale.json (or --output-dir) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from procstat import PeakRss, cpu_s, session_pids  # noqa: E402

from benchmarks.stamp import (  # noqa: E402
    UsageError,
    fresh_dir,
    header,
    parse_brokers,
    stamped_dir,
)
from benchmarks.tables import text_table  # noqa: E402
from ttg_lib.backends import get_spec  # noqa: E402
from ttg_lib.cluster.brokers import start_private  # noqa: E402
from ttg_lib.summary import RunSummary  # noqa: E402

# issue 23's targets: for every size here, and the 10^9 run's runtime (a 10^8 run meets it)
GOALS = {"runtime_s": 900.0, "orchestrator_peak_rss_mib": 300.0, "broker_mb": 200.0,
         "read_back_peak_rss_mib": 1024.0}
BYTES_PER_POINT_BOUND = 16  # 10^6 points: 14.2 MB with source_run (10^8 took 12 B a point)
READ_CASES = ("baseline", "slice", "filter", "notebook", "scan", "export", "export-slice")
SLICE_ROWS_MAX = 1_000_000  # a slice of 1 % of 10^8 rows; of 10^9, the same 10^6 rows
EXPORT_ROWS_MAX = 100_000_000  # the whole-table export of 10^9 rows streams its first 10^8
# (the same constant memory; all of it would be 50 GB of CSV and most of an hour)


def parse_sizes(text: str) -> list[int]:
    sizes = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        try:
            value = float(item)
        except ValueError:
            raise UsageError(f"--sizes: {item!r} is not a number (e.g. 1e6,1e7,1e8)") from None
        if value < 1 or value != int(value):
            raise UsageError(f"--sizes: {item!r} must be a whole number of points >= 1")
        sizes.append(int(value))
    if not sizes:
        raise UsageError("--sizes: give at least one size, e.g. 1e6,1e7,1e8")
    return sizes


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def broker_memory(backend: str, url: str) -> dict[str, Any]:
    """What the broker itself says about its memory (Redis only: INFO memory)."""
    if backend != "redis":
        return {}
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("memory")
    finally:
        client.close()
    return {"used_memory_peak_mb": round(info["used_memory_peak"] / 1e6, 1),
            "used_memory_mb": round(info["used_memory"] / 1e6, 1)}


def disk_need(sizes: list[int], backends: list[str]) -> int:
    """Bytes the series leaves on disk at its fullest: every record kept, and the largest
    once more (parts and merged table side by side while the table is written)."""
    return BYTES_PER_POINT_BOUND * (sum(sizes) * len(backends) + max(sizes))


def check_disk(out: Path, sizes: list[int], backends: list[str]) -> dict[str, float]:
    """Raise UsageError when the disk under ``out`` cannot hold the series."""
    usage = shutil.disk_usage(out)
    need = disk_need(sizes, backends)
    if usage.free < need:
        raise UsageError(
            f"not enough disk: the series needs about {need / 1e9:.1f} GB on {out} "
            f"({BYTES_PER_POINT_BOUND} bytes a point for every record, the largest twice), "
            f"{usage.free / 1e9:.1f} GB are free; free some space, run fewer --sizes or "
            f"give --output-dir on a larger disk")
    return {"free_gb": round(usage.free / 1e9, 1), "need_gb": round(need / 1e9, 1)}


def disk_used(out: Path, before: dict[str, float]) -> dict[str, float]:
    return {"records_gb": round(dir_bytes(out) / 1e9, 3),
            "free_gb": round(shutil.disk_usage(out).free / 1e9, 1),
            "free_gb_before": before.get("free_gb", float("nan"))}


def one_size(backend: str, params: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    broker = start_private(backend)
    env = {**os.environ, get_spec(backend).url_env: broker.url,
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p)}
    cmd = [sys.executable, "-m", "ttg_lib.cli", "run", "--json", "--monitor", "none",
           "--backend", backend, "--scale", "large", "--compute", args.compute,
           "--total-params", str(params), "--chunk-size", str(args.chunk_size),
           "--workers", "3", "--verify", args.verify,
           "--output-dir", str(fresh_dir(out / "runs-root")),
           *args.ttg_flag]
    try:
        pids = session_pids(broker.pid)
        cpu0 = cpu_s(pids)
        with PeakRss(broker.pid) as rss:
            started, launched = time.perf_counter(), time.time()
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            wall, exited = time.perf_counter() - started, time.time()
        broker_cpu = cpu_s(session_pids(broker.pid)) - cpu0
        memory = broker_memory(backend, broker.url)
    finally:
        broker.stop()
    if proc.returncode != 0:
        return {"error": f"ttg run exited {proc.returncode}: {proc.stderr.strip()[-800:]}"}
    summary = RunSummary.from_dict(json.loads(proc.stdout))
    record = Path(summary.record_dir)
    results = record / "results.parquet"
    row = {
        "run_id": summary.run_id, "ok": summary.ok, "verify_mode": summary.verify_mode,
        "values_recomputed": summary.values_recomputed,
        "runtime_s": summary.runtime_s, "wall_s": round(wall, 2),
        "points_s": summary.throughput_params_s,
        "orchestrator_peak_rss_mib": summary.orchestrator_peak_rss_mib,
        "worker_peak_rss_mib": summary.worker_peak_rss_mib,
        "broker_peak_rss_mib": rss.mib, "broker_cpu_s": round(broker_cpu, 2), **memory,
        **phases(record, summary.runtime_s, launched, exited),
        "results_rows": summary.results_rows,
        "results_parquet_bytes": results.stat().st_size if results.exists() else None,
        "record_bytes": dir_bytes(record), "results_file": str(results),
    }
    # the broker's memory: what Redis says it used at peak, RabbitMQ's process RSS (in MB)
    broker_mb = row.get("used_memory_peak_mb") or row["broker_peak_rss_mib"] * 2**20 / 1e6
    row["holds"] = {"every_row_kept": row["results_rows"] == params and bool(row["ok"]),
                    "runtime_under_15_min": row["runtime_s"] < GOALS["runtime_s"],
                    "orchestrator_under_300_mib": row["orchestrator_peak_rss_mib"]
                    < GOALS["orchestrator_peak_rss_mib"],
                    "broker_under_200_mb": broker_mb < GOALS["broker_mb"]}
    return row


def phases(record: Path, runtime_s: float | None, launched: float, exited: float
           ) -> dict[str, float | None]:
    """The wall time split at the last result read (chunks.jsonl's mtime: its last line is
    appended as the result is read): ``startup_s`` launch to the first task published,
    ``close_s`` last result to exit (workers stopped, the table merged and fsynced, the
    summary), and of that ``table_s``, last result to results.parquet in place (its mtime)."""
    timeline, table = record / "chunks.jsonl", record / "results.parquet"
    if not timeline.exists() or runtime_s is None:
        return {"startup_s": None, "close_s": None, "table_s": None}
    last = timeline.stat().st_mtime
    return {"startup_s": round(last - runtime_s - launched, 2),
            "close_s": round(exited - last, 2),
            "table_s": round(table.stat().st_mtime - last, 2) if table.exists() else None}


# -- reading back ------------------------------------------------------------------------

def middle(rows: int, share: float) -> tuple[int, int]:
    """The param_ids of the middle ``share`` of a table, 10^6 at most: [lo, hi)."""
    lo = rows // 2
    return lo, lo + max(1, min(SLICE_ROWS_MAX, int(rows * share)))


def read_case(case: str, table: Path) -> dict[str, Any]:
    """One read, in this process (the parent measures its peak RSS)."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ttg_lib.results import load_results

    meta = pq.ParquetFile(table).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    value = next((n for n in names if n.startswith("value")), names[-1])
    started = time.perf_counter()
    if case == "slice":
        lo, hi = middle(meta.num_rows, 0.01)
        frame = load_results(table, columns=["param_id", value],
                             filters=[("param_id", ">=", lo), ("param_id", "<", hi)])
        rows = len(frame)
        assert (frame["param_id"].to_numpy() == np.arange(lo, hi)).all(), "the slice's rows"
    elif case == "filter":
        lo, hi = middle(meta.num_rows, 0.001)
        rows = len(load_results(table, filters=(pc.field("param_id") >= lo)
                                & (pc.field("param_id") < hi)))
        assert rows == hi - lo, "the filter's rows"
    elif case == "notebook":
        from ttg_lib.notebook.resultchart import results_figure
        from ttg_lib.notebook.results import load_run_results, results_table

        record = table.parent
        if table.name != "results.parquet":  # --read-back-only a file of another name
            record = Path(tempfile.mkdtemp(prefix="scale-notebook-"))
            (record / "results.parquet").symlink_to(table.resolve())
        try:
            results = load_run_results(record)
            assert results is not None and results_table(record), "the notebook's table"
            assert results_figure(record) is not None, "the notebook's chart"
            rows = results.total.total
        finally:
            if record != table.parent:
                shutil.rmtree(record)
    elif case == "baseline":
        rows = 0
    elif case == "scan":
        rows, total = 0, 0
        from ttg_lib.results.slicing import dataset  # pre-buffering off: a plain
        # ds.dataset() pre-buffers the whole column of a one-file table (9.2 GiB at 10^9)
        source = dataset([table], pq.read_schema(table))
        for batch in source.to_batches(columns=[value], batch_size=65_536,
                                       batch_readahead=1, fragment_readahead=1):
            rows += batch.num_rows
            total += pc.sum(batch.column(0)).as_py() or 0
    else:
        raise UsageError(f"unknown read case {case!r}")
    return {"rows": rows, "seconds": round(time.perf_counter() - started, 2), "column": value}


def export_command(case: str, table: Path) -> list[str]:
    """``ttg results`` streaming the whole table (csv) or a slice (jsonl) to /dev/null."""
    import pyarrow.parquet as pq

    cmd = [sys.executable, "-m", "ttg_lib.cli", "results", str(table), "--out", os.devnull]
    if case == "export":
        rows = pq.ParquetFile(table).metadata.num_rows
        return [*cmd, "--format", "csv", *(["--where", f"param_id < {EXPORT_ROWS_MAX}"]
                                           if rows > EXPORT_ROWS_MAX else [])]
    schema = pq.read_schema(table)
    value = next((n for n in schema.names if n.startswith("value")), schema.names[-1])
    lo, hi = middle(pq.ParquetFile(table).metadata.num_rows, 0.01)
    return [*cmd, "--format", "jsonl", "--columns", f"param_id,{value}",
            "--where", f"param_id >= {lo}", "--where", f"param_id < {hi}"]


def measured(cmd: list[str]) -> tuple[int, str, float]:
    """Run a child; its exit code, stdout and peak RSS in MiB (from wait4's rusage)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        stdout = stderr
    return proc.returncode, stdout, round(usage.ru_maxrss / 1024, 1)


def read_back(table: Path) -> dict[str, Any]:
    rows = {}
    for case in READ_CASES:
        if case.startswith("export"):
            cmd = export_command(case, table)
            started = time.perf_counter()
            code, text, peak = measured(cmd)
            row: dict[str, Any] = {"seconds": round(time.perf_counter() - started, 2),
                                   "via": " ".join(["ttg", *cmd[3:]])}
        else:
            code, text, peak = measured([sys.executable, str(Path(__file__).resolve()),
                                         "--read-case", case, "--table", str(table)])
            row = json.loads(text) if code == 0 else {}
        row.update(peak_rss_mib=peak, under_1_gib=peak < GOALS["read_back_peak_rss_mib"],
                   **({} if code == 0 else {"error": text.strip()[-600:]}))
        rows[case] = row
        print(f"[scale] read {case}: {row.get('rows', '')} rows, {row.get('seconds')} s, "
              f"peak RSS {peak} MiB {row.get('error', '')}", flush=True)
    return {"table": str(table), "table_bytes": table.stat().st_size,
            "table_rows": _rows_of(table), "cases": rows}


def _rows_of(table: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(table).metadata.num_rows


def print_table(result: dict[str, Any]) -> None:
    rows = []
    for backend, sizes in result["series"].items():
        for params, row in sizes.items():
            if "runtime_s" not in row:
                rows.append([backend, f"{int(params):,}", str(row.get("error"))])
                continue
            close = row.get("close_s")
            rows.append([backend, f"{int(params):,}", f"{row['runtime_s']:.2f}",
                         f"{close if close is not None else float('nan'):.2f}",
                         f"{row['wall_s']:.2f}", f"{row['points_s']:,.0f}",
                         f"{row['orchestrator_peak_rss_mib']:.1f}",
                         f"{row['broker_peak_rss_mib']:.1f}",
                         f"{row.get('used_memory_peak_mb', float('nan')):.1f}",
                         f"{(row['results_parquet_bytes'] or 0) / 1e6:.1f}",
                         f"{row['record_bytes'] / 1e6:.1f}"])
    print()
    print("\n".join(text_table(["broker", "points", "runtime s", "close s", "wall s",
                                "points/s", "orch MiB", "broker MiB", "redis peak MB",
                                "parquet MB", "record MB"], rows)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1e6,1e7,1e8", help="points per run, comma list")
    parser.add_argument("--backends", default=None, help="redis,rabbitmq [both; --total: redis]")
    parser.add_argument("--total", metavar="N", default=None,
                        help="the billion-point mode: one run of N points (e.g. 1000000000 "
                             "or 1e9), its table read back, the disk it used printed")
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--compute", default="ttg_lib.compute:placeholder")
    parser.add_argument("--verify", default="sample", choices=("full", "sample", "none"))
    parser.add_argument("--ttg-flag", action="append", default=[], metavar="FLAG",
                        help="an extra `ttg run` argument (repeatable)")
    parser.add_argument("--read-back", action="store_true",
                        help="then read slices of the largest table and report the RSS")
    parser.add_argument("--read-back-only", metavar="FILE",
                        help="only read slices of this results.parquet (no runs)")
    parser.add_argument("--output-dir", default=str(ROOT / "outputs" / "bench"))
    parser.add_argument("--read-case", choices=READ_CASES, help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.read_case:
        print(json.dumps(read_case(args.read_case, Path(args.table))))
        return 0
    try:
        sizes = parse_sizes(args.total if args.total else args.sizes)
        if args.total:
            sizes = sizes[:1]
            args.read_back = True
        backends = parse_brokers(args.backends or ("redis" if args.total else
                                                   "redis,rabbitmq"))
        if args.read_back_only and not Path(args.read_back_only).is_file():
            raise UsageError(f"--read-back-only {args.read_back_only}: no such file")
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        disk = {} if args.read_back_only else check_disk(Path(args.output_dir), sizes,
                                                          backends)
    except UsageError as exc:
        print(f"scale.py: {exc}", file=sys.stderr)
        return 2
    out = stamped_dir(args.output_dir, "scale")
    result: dict[str, Any] = {
        **header("scale.py", argv), "chunk_size": args.chunk_size, "compute": args.compute,
        "verify": args.verify, "ttg_flags": args.ttg_flag, "disk_at_start": disk,
        "series": {}}
    largest: Path | None = Path(args.read_back_only) if args.read_back_only else None
    largest_n = 0
    if not args.read_back_only:
        for backend in backends:
            result["series"][backend] = {}
            for params in sizes:
                print(f"[scale] {backend} {params:,} points ...", flush=True)
                row = one_size(backend, params, args, out)
                result["series"][backend][str(params)] = row
                print(f"[scale] {backend} {params:,}: {json.dumps(row)}", flush=True)
                (out / "scale.json").write_text(json.dumps(result, indent=2))
                if row.get("results_parquet_bytes") and params > largest_n:
                    largest, largest_n = Path(row["results_file"]), params
        print_table(result)
    if (args.read_back or args.read_back_only) and largest is not None:
        result["read_back"] = read_back(largest)
    result["load_at_end"] = os.getloadavg()
    if not args.read_back_only:
        result["disk_at_end"] = disk_used(out, disk)
        print(f"[scale] disk: the records take {result['disk_at_end']['records_gb']} GB "
              f"under {out}; {result['disk_at_end']['free_gb']} GB free "
              f"(was {disk['free_gb']})", flush=True)
    (out / "scale.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'scale.json'}")
    failed = [f"{b} {p}" for b, s in result["series"].items() for p, r in s.items()
              if "error" in r or r.get("ok") is False]
    failed += [f"{b} {p}: {goal}" for b, s in result["series"].items() for p, r in s.items()
               for goal, held in r.get("holds", {}).items() if not held]
    failed += [f"read {c}" for c, r in result.get("read_back", {}).get("cases", {}).items()
               if "error" in r or not r["under_1_gib"]]
    if failed:
        print(f"scale.py: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
