"""The encoding comparison of README.md: a results table cut into parts of 65,536 rows (as a
run's flushes write them) and merged back, with the writer's own functions; CPU seconds.

    PYTHONPATH=. python benchmarks/results/2026-12-05-close-profile/encoding.py \
        old|new|zstd|none RESULTS_PARQUET [ROWS]

``old`` is d60ddfe's write_options; ``new`` the writer's current one.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ttg_lib.results import writer as W

PART_ROWS = 65_536


def old_options(schema: pa.Schema) -> dict[str, Any]:
    return {"use_dictionary": [f.name for f in schema if f.type == pa.string()],
            "write_statistics": [n for n in ("param_id", "value_json") if n in schema.names],
            "compression": "snappy"}


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(variant: str, source: str, rows: int | None = None) -> dict[str, Any]:
    new_options = W.write_options
    W.write_options = {"old": old_options, "new": new_options,
                       "zstd": lambda s: {**new_options(s), "compression": "zstd"},
                       "none": lambda s: {**new_options(s), "compression": "none"}}[variant]
    whole = pq.read_table(source)
    rows = min(rows or len(whole), len(whole))
    whole = whole.slice(0, rows)
    work = Path(tempfile.mkdtemp(prefix="encoding-"))
    (work / "parts").mkdir()
    try:
        c0, t0 = cpu(), time.perf_counter()
        for i, offset in enumerate(range(0, rows, PART_ROWS)):
            part = whole.slice(offset, PART_ROWS)
            W.write_durably(work / "parts" / f"part-{i:06d}.parquet",
                            lambda h, t=part: pq.write_table(t, h, row_group_size=len(t),
                                                             **W.write_options(t.schema)))
        c1, t1 = cpu(), time.perf_counter()
        parts = W.part_files(work / "parts")
        W.merge(parts, work / "table.parquet", whole.schema, W.ROW_GROUP_ROWS, durable=True)
        c2, t2 = cpu(), time.perf_counter()
        return {"variant": variant, "rows": rows, "parts": len(parts),
                "parts_cpu_s": round(c1 - c0, 2), "parts_wall_s": round(t1 - t0, 2),
                "merge_cpu_s": round(c2 - c1, 2), "merge_wall_s": round(t2 - t1, 2),
                "parts_bytes_a_row": round(sum(p.stat().st_size for p in parts) / rows, 2),
                "table_bytes_a_row": round((work / "table.parquet").stat().st_size / rows, 2),
                "load": os.getloadavg()[0]}
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3
                          else None)))
