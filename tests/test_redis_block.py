"""A read that must not wait does not block on Redis (its cron times blocked clients out at
hz 10: BLOCK 1 waited ~100 ms, which cost a worker looking ahead 100 ms a batch)."""

from __future__ import annotations

import pytest

from ttg_lib.backends.redis_streams import block_ms


@pytest.mark.parametrize(("timeout", "expected"),
                         [(0.0, None), (-1.0, None), (0.0004, 1), (0.5, 500), (2.0, 2000)])
def test_no_wait_means_no_block(timeout: float, expected: int | None) -> None:
    assert block_ms(timeout) == expected


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", ["redis"])
def test_a_look_ahead_that_finds_nothing_does_not_sweep(backend, broker_url: str) -> None:
    """The worker's look-ahead fetch (timeout 0) comes back empty whenever the stream is
    drained for a moment; that is not idleness. Treating it as such swept (a promote script and
    an XAUTOCLAIM) before every batch of a fast run: issue 18's cost line on Redis."""
    import time

    from ttg_lib.backends import open_consumer
    from ttg_lib.messages import Task

    backend.publish_tasks([Task(run_id="r1", chunk_id=i, start=i * 4, count=4, work_ms=0,
                                compute="ttg_lib.compute:placeholder")
                           for i in range(2)])
    consumer = open_consumer("redis", broker_url, lease_s=0.6)
    consumer.connect()
    sweeps = 0
    claim = consumer._claim_stale

    def counted(name: str):
        nonlocal sweeps
        sweeps += 1
        return claim(name)

    consumer._claim_stale = counted
    try:
        assert len(consumer.fetch("c1", 0.5)) == 1  # the first fetch sweeps
        started, before = time.monotonic(), sweeps
        got = sum(len(consumer.fetch("c1", 0.0)) for _ in range(20))
        elapsed = time.monotonic() - started
        assert got == 1
        interval = min(0.5, consumer.lease_s / 4)
        assert sweeps - before <= 1 + int(elapsed / interval), (sweeps - before, elapsed)
    finally:
        consumer.close()
