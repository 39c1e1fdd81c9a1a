"""A read that must not wait does not block on Redis (its cron times blocked clients out at
hz 10: BLOCK 1 waited ~100 ms, which cost a worker looking ahead 100 ms a batch)."""

from __future__ import annotations

import pytest

from ttg_lib.backends.redis_streams import block_ms


@pytest.mark.parametrize(("timeout", "expected"),
                         [(0.0, None), (-1.0, None), (0.0004, 1), (0.5, 500), (2.0, 2000)])
def test_no_wait_means_no_block(timeout: float, expected: int | None) -> None:
    assert block_ms(timeout) == expected
