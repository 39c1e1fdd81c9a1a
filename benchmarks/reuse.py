"""Reuse lookup against a big earlier run: time and peak RSS (issue 22, item 1).

An earlier run's ``results.parquet`` of ``--points`` rows (default 10^7: a grid of lr (100) x
depth (1,000) x act (points / 10^5 strings), a float value per point) is written first,
untimed, with its record's config.json naming the function's fingerprint. Then, in a fresh
process (so its peak RSS is the reuse's alone), a new run's space, the same grid with
``depth`` 10 % wider, is planned as a run does before it publishes anything
(:func:`ttg_lib.reuse.plan_reuse`: sources, lookup, the sample of reused values to check,
read from the table), and the reused rows are then copied into the new run's table
(:meth:`ResultsWriter.add_rows`, what the verdict does). Acceptance: the plan under 30 s and
1 GiB RSS.

    nice -n 10 python benchmarks/reuse.py               # 10^7 points
    nice -n 10 python benchmarks/reuse.py --points 1000000 --quick   # a smoke test

Writes reuse.json and summary.md under outputs/bench/reuse-<stamp>/ (the earlier run's table
goes to a temporary directory, removed at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.stamp import header, stamped_dir  # noqa: E402
from benchmarks.tables import md_table, publish  # noqa: E402

FINGERPRINT = "fp1:" + "0" * 64
LIMIT_S, LIMIT_MIB = 30.0, 1024.0


def grid(points: int, widen: float = 1.0) -> dict:
    acts = max(1, points // 100_000)
    return {"axes": {"lr": {"logspace": [-4, -1, 100]},
                     "depth": {"range": [0, int(1000 * widen)]},
                     "act": [f"a{i}" for i in range(acts)]}}


def peak_mib() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not carried over an exec from the
    parent that wrote the earlier table)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_earlier(output: Path, points: int) -> Path:
    """The earlier run's record: config.json and a results.parquet of every point."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ttg_lib.results.layout import ValueLayout, schema_for
    from ttg_lib.results.writer import write_options
    from ttg_lib.space import load_space

    space = load_space(grid(points))
    record = output / "runs" / "earlier"
    record.mkdir(parents=True)
    (record / "config.json").write_text(json.dumps({"fingerprint": FINGERPRINT}))
    schema = schema_for(space, ValueLayout("scalar", (("value", "float64"),)))
    block = 1 << 20
    with pq.ParquetWriter(record / "results.parquet", schema,
                          **write_options(schema)) as writer:
        for start in range(0, space.size, block):
            n = min(block, space.size - start)
            cols = space.columns(start, n)
            ids = np.arange(start, start + n, dtype=np.int64)
            arrays = {"param_id": pa.array(ids), **{k: pa.array(v) for k, v in cols.items()},
                      "value": pa.array(ids * 0.5), "value_json": pa.nulls(n, pa.string()),
                      "worker": pa.array(["w-0"] * n).dictionary_encode().cast(
                          schema.field("worker").type),
                      "attempt": pa.array(np.ones(n, dtype=np.int64)),
                      "error": pa.nulls(n, pa.string()),
                      "source_run": pa.array(["earlier"] * n).dictionary_encode().cast(
                          schema.field("source_run").type)}
            writer.write_table(pa.Table.from_arrays([arrays[f.name] for f in schema],
                                                    schema=schema), row_group_size=65_536)
    return record


def measure(output: Path, points: int, copy: bool) -> dict:
    """In this process: the plan as a run makes it, then (optionally) the copy."""
    import pyarrow.parquet as pq

    from ttg_lib.config import RunConfig
    from ttg_lib.results import ResultsWriter, ValueLayout
    from ttg_lib.reuse import plan_reuse, reused_rows
    from ttg_lib.space import load_space

    space_dict = grid(points, widen=1.1)
    space = load_space(space_dict)
    config = RunConfig.build(space=space_dict, output_dir=str(output), run_id="new",
                             chunk_size=1000, fingerprint=FINGERPRINT,
                             compute="ttg_lib.examples:train", verify="sample")
    lines: list[str] = []
    before = peak_mib()
    began, cpu = time.perf_counter(), time.process_time()
    plan = plan_reuse(config, space, lines.append)
    plan_s, plan_cpu = time.perf_counter() - began, time.process_time() - cpu
    plan_peak = peak_mib()
    assert plan is not None and len(plan.map) == points, (len(plan.map) if plan else 0)
    out = {"points_earlier": points, "points_new": space.size, "points_reused": len(plan.map),
           "chunks_checked": len(plan.checks), "plan_s": round(plan_s, 2),
           "plan_cpu_s": round(plan_cpu, 2),
           "rss_before_mib": round(before, 1), "plan_peak_rss_mib": round(plan_peak, 1),
           "said": lines}
    if copy:
        record = output / "runs" / "new"
        record.mkdir(parents=True)
        writer = ResultsWriter(record, space)
        layout = ValueLayout.from_schema(pq.read_schema(plan.map.sources[0].table))
        began = time.perf_counter()
        for rows in reused_rows(plan.map, 0):
            writer.add_rows(rows, layout)
        out["copy_s"] = round(time.perf_counter() - began, 2)
        out["copy_peak_rss_mib"] = round(peak_mib(), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="skip the copy")
    parser.add_argument("--output-dir", default="outputs/bench")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child: its output dir
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.points, copy=not args.quick)))
        return 0
    out = stamped_dir(args.output_dir, "reuse")
    stamp = header("reuse.py", argv)
    work = Path(tempfile.mkdtemp(prefix="ttg-reuse-bench-"))
    try:
        began = time.perf_counter()
        write_earlier(work, args.points)
        setup_s = time.perf_counter() - began
        child = subprocess.run([sys.executable, __file__, "--points", str(args.points),
                                "--measure", str(work), *(["--quick"] if args.quick else [])],
                               capture_output=True, text=True, check=True)
        result = json.loads(child.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {**stamp, **result, "setup_s": round(setup_s, 1), "load_at_end": os.getloadavg()}
    result["ok"] = result["plan_s"] < LIMIT_S and result["plan_peak_rss_mib"] < LIMIT_MIB
    (out / "reuse.json").write_text(json.dumps(result, indent=2))
    rows = [["plan (sources, lookup, sample read)", result["plan_s"], result["plan_cpu_s"],
             result["plan_peak_rss_mib"], f"< {LIMIT_S:.0f} s, < {LIMIT_MIB:.0f} MiB"]]
    if "copy_s" in result:
        rows.append(["copy of the reused rows", result["copy_s"], "-",
                     result["copy_peak_rss_mib"], "-"])
    lines = [f"# Reuse lookup, {args.points:,} earlier points", "",
             f"`{stamp['command']}`, {stamp['date']}, load {stamp['load_at_start']} at start, "
             f"{result['load_at_end']} at end.", "",
             f"New space {result['points_new']:,} points, {result['points_reused']:,} reused, "
             f"{result['chunks_checked']} chunk(s) to check (sample).", "",
             *md_table(["step", "seconds", "CPU seconds", "peak RSS MiB", "limit"], rows), "",
             f"RSS before the plan: {result['rss_before_mib']} MiB. "
             f"{'PASS' if result['ok'] else 'FAIL'}."]
    publish(out, "\n".join(lines), out / "reuse.json")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
