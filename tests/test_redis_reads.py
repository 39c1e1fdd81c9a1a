"""The orchestrator's reads of Redis results are bounded in points, so its memory stays flat
when the workers run ahead of it (a 10^8 run of 10,000-point chunks went past 300 MiB when
each read took 1,000 entries)."""

from __future__ import annotations

import time

import pytest

from ttg_lib.backends.redis_streams import RESULTS
from ttg_lib.messages import Result, encode_results

POINTS = 10_000


def entry(chunk_id: int) -> dict[str, bytes]:
    result = Result(run_id="r1", chunk_id=chunk_id, start=chunk_id * POINTS, count=POINTS,
                    worker="w", attempt=1, started_at=time.time(), finished_at=time.time(),
                    values=[0.5] * POINTS)
    return {"r": encode_results([result])}


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", ["redis"])
def test_a_read_brings_a_bounded_number_of_points(backend) -> None:
    pipe = backend.r.pipeline(transaction=False)
    for chunk_id in range(60):
        pipe.xadd(RESULTS, entry(chunk_id))
    pipe.execute()
    reads = []
    deadline = time.monotonic() + 10
    while sum(len(r) for r in reads) < 60 and time.monotonic() < deadline:
        reads.append(backend.read_results(0.2))
    assert sorted(r.chunk_id for read in reads for r in read) == list(range(60))
    assert len(reads[0]) <= 16  # nothing known yet: a few entries
    largest = max(sum(r.count for r in read) for read in reads[1:])
    assert largest <= backend.READ_POINTS, largest
