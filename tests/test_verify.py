"""Verification catches every dropped, altered or duplicated result."""

from __future__ import annotations

import time
from array import array

from ttg_lib.compute import placeholder
from ttg_lib.messages import Result
from ttg_lib.run import Run
from ttg_lib.verify import ResultCollector, VerifyMode, VerifyPlan


def good(chunk_id: int, size: int = 5, worker: str = "w1", started: float = 1.0) -> Result:
    start = chunk_id * size
    values = [placeholder(p, 0) for p in range(start, start + size)]
    return Result(run_id="r", chunk_id=chunk_id, start=start, count=size, worker=worker,
                  attempt=1, started_at=started, finished_at=started + 1, values=values)


def collector(rtol: float = 0.0) -> ResultCollector:
    return ResultCollector(run_id="r", total_params=20, chunk_size=5, rtol=rtol)


def recomputed(chunk_id: int, worker: str = "w2", **kw) -> Result:
    r = good(chunk_id, worker=worker, **kw)
    r.verify = True
    return r


def test_all_present_is_verified():
    c = collector()
    assert all(c.add(good(i)) for i in range(4))
    v = c.verdict()
    assert v.ok and v.params_verified == 20 and v.lost_params == 0 and v.values_recomputed == 0


def test_dropped_result_is_lost():
    c = collector()
    for i in (0, 1, 3):
        c.add(good(i))
    v = c.verdict()
    assert not v.ok and v.lost_params == 5 and v.params_verified == 15


def test_a_recomputation_that_agrees_verifies_its_chunk_and_one_that_differs_fails_it():
    c = collector()
    bad = good(2)
    bad.values[3] += 1
    for r in (good(0), good(1), bad, good(3)):
        c.add(r)
    c.expect_verification(1)
    c.expect_verification(2)
    assert not c.all_done  # recomputations asked for and not answered
    assert c.add_verification(recomputed(1)) and c.add_verification(recomputed(2))
    assert not c.add_verification(recomputed(2))  # answered already
    v = c.verdict()
    assert not v.ok and v.wrong_results == 5 and v.params_verified == 15
    assert v.values_recomputed == 10
    assert "chunk 2: values recomputed by w2 differ" in v.problems[0]


def test_an_unanswered_recomputation_fails_the_run():
    c = collector()
    for i in range(4):
        c.add(good(i))
    c.expect_verification(0)
    v = c.verdict()
    assert not v.ok and v.verifications_missing == 1 and v.lost_params == 0


def test_floats_agree_exactly_unless_a_tolerance_is_given():
    def floats(chunk_id: int, shift: float, verify: bool = False) -> Result:
        r = good(chunk_id)
        r.values, r.verify = [p / 3 + shift for p in range(r.start, r.start + 5)], verify
        return r

    for rtol, agrees in ((0.0, False), (1e-9, True)):
        c = collector(rtol)
        for i in range(4):
            c.add(floats(i, 0.0))
        c.expect_verification(1)
        c.add_verification(floats(1, 1e-12, verify=True))
        assert c.verdict().ok is agrees, rtol


def test_a_size_mismatch_is_wrong_not_lost():
    c = collector()
    short = good(1)
    short.values = short.values[:3]
    for r in (good(0), short, good(2), good(3)):
        c.add(r)
    v = c.verdict()
    assert not v.ok and v.wrong_results == 5 and v.lost_params == 0
    assert "range/size mismatch" in v.problems[0]


def test_duplicates_counted_once_but_rereads_are_not_duplicates():
    c = collector()
    c.add(good(0))
    assert not c.add(good(0))  # the same message read again (e.g. after a reconnect)
    assert c.duplicates == 0
    assert not c.add(good(0, worker="w2", started=2.0))  # a real second delivery
    assert c.duplicates == 1
    for i in (1, 2, 3):
        c.add(good(i))
    assert c.verdict().ok and c.verdict().params_verified == 20


def test_foreign_and_garbage_results_fail_the_run():
    c = collector()
    other = good(0)
    other.run_id = "other"
    c.add(other)
    c.add(b"garbage")
    outside = good(0)
    outside.chunk_id = 9
    c.add(outside)
    assert c.foreign == 3 and not c.verdict().ok


def test_sampling_picks_about_one_chunk_in_a_hundred_and_one_of_each_worker():
    plan = VerifyPlan(VerifyMode.SAMPLE, "run-x")
    picked = [c for c in range(10_000) if plan.wants(c, f"w{c % 3}")]
    assert 50 <= len(picked) <= 200
    assert {c % 3 for c in picked[:3]} == {0, 1, 2}  # every worker's first chunk
    again = VerifyPlan(VerifyMode.SAMPLE, "run-x")
    assert [c for c in range(10_000) if again.wants(c, f"w{c % 3}")] == picked
    assert not any(VerifyPlan(VerifyMode.NONE, "r").wants(c, "w") for c in range(100))
    assert all(VerifyPlan(VerifyMode.FULL, "r").wants(c, "w") for c in range(100))


def _tamper(run: Run, how: str) -> None:
    real = run.backend.read_results
    state = {"done": False}

    def read(timeout: float):
        out = real(timeout)
        for i, r in enumerate(out):
            if isinstance(r, Result) and not state["done"]:
                state["done"] = True
                if how == "drop":
                    out.pop(i)
                else:
                    r.values[0] = -1
                break
        return out

    run.backend.read_results = read


def _run_tampered(make_config, backend_name: str, how: str) -> dict:
    cfg = make_config(backend=backend_name, total_params=50, chunk_size=5, work_ms=1.0,
                      timeout_s=8)
    run = Run(cfg)
    run.start()
    _tamper(run, how)
    deadline = time.monotonic() + 30
    while not run.done and time.monotonic() < deadline:
        run.step(0.05)
    return run.finish()


def test_a_run_with_a_dropped_result_fails(make_config, backend_name, broker_url):
    summary = _run_tampered(make_config, backend_name, "drop")
    assert not summary["ok"]
    assert summary["lost_params"] == 5
    assert summary["state"] == "timed-out"


def test_a_run_with_an_altered_result_fails(make_config, backend_name, broker_url):
    summary = _run_tampered(make_config, backend_name, "alter")
    assert not summary["ok"] and summary["verify_mode"] == "full"
    assert summary["wrong_results"] == 5  # the chunk whose values and recomputation differ


def test_values_pack_and_corruption_is_flagged():
    from ttg_lib.messages import FRAME_MAGIC, decode_results, encode_results

    ints = good(1)
    floats = Result(run_id="r", chunk_id=2, start=10, count=2, worker="w", attempt=1,
                    started_at=0, finished_at=0, values=[0.5, "x"])
    frame = encode_results([ints, floats])
    back = decode_results(frame)
    assert [list(r.values) for r in back] == [ints.values, floats.values]
    assert not any(r.corrupt for r in back)
    assert frame.endswith(array("q", ints.values).tobytes() + b'[0.5,"x"]')  # raw int64
    tampered = bytearray(encode_results([ints]))
    tampered[-1] ^= 1  # one bit flipped in transit
    (hit,) = decode_results(bytes(tampered))
    assert hit.corrupt and list(hit.values)[:-1] == ints.values[:-1]
    assert decode_results(frame[:-3]) == [frame[:-3]]  # truncated: raw bytes, a problem
    assert decode_results(b'{"run_id": "r"}') == [b'{"run_id": "r"}']
    assert frame.startswith(FRAME_MAGIC)


def test_a_result_of_the_wrong_size_is_wrong_not_verified():
    c = collector()
    short = good(1)
    short.values = short.values[:-1]  # 4 values for a 5-param chunk
    shifted = good(2)
    shifted.start += 1  # the right count, the wrong range
    for r in (good(0), short, shifted, good(3)):
        assert c.add(r) is (r not in (short, shifted))  # refused: not written, stays open
    assert c.take_republish() == [1, 2]  # published again
    v = c.verdict()
    assert not v.ok and v.wrong_results == 10 and v.params_verified == 10
    assert v.lost_params == 0
    assert sum("range/size mismatch" in p for p in v.problems) == 2


def test_a_chunk_out_of_range_is_foreign():
    c = collector()
    for chunk_id in (-1, 4, 10**9):
        assert not c.add(_with_chunk(chunk_id))
    assert c.foreign == 3 and c.completed == 0
    assert any("outside 0..3" in p for p in c.verdict().problems)


def _with_chunk(chunk_id: int) -> Result:
    r = good(0)
    r.chunk_id = chunk_id
    return r


def test_a_corrupt_delivery_is_not_written_and_its_chunk_is_published_again():
    """Finding 7: a frame that fails the checksum leaves its chunk open; the next good
    delivery finishes it and the run verifies."""
    c = collector()
    bad = good(1)
    bad.corrupt = True
    assert not c.add(bad) and c.take_republish() == [1]
    assert not c.all_done and c.chunk_state[1] == 0
    for cid in range(4):
        assert c.add(good(cid))
    v = c.verdict()
    assert v.ok and v.params_verified == 20 and v.wrong_results == 0


def test_a_chunk_refused_again_and_again_fails_with_its_reason():
    c = collector()
    for _ in range(3):
        bad = good(1)
        bad.corrupt = True
        c.add(bad)
    assert c.chunk_state[1] == 2 and "structural check" in c.gave_up[1]
    assert c.take_republish() == []


def test_dict_keys_count_in_a_recomputation():
    """Finding 16: {"loss": 0.5} and {"acc": 0.5} are not the same result."""
    from ttg_lib.messages import ValueColumns
    from ttg_lib.verify import fingerprint

    def cols(rows):
        return ValueColumns({key: [row[key] for row in rows] for key in rows[0]})

    assert fingerprint(cols([{"loss": 0.5}])) != fingerprint(cols([{"acc": 0.5}]))
    assert fingerprint(cols([{"a": 1, "b": 2}])) != fingerprint(cols([{"b": 1, "a": 2}]))
    assert fingerprint(cols([{"a": 1, "b": 2}])) == fingerprint(cols([{"b": 2, "a": 1}]))


def test_a_duplicate_delivery_is_compared_under_every_mode():
    """Finding 9: a chunk delivered twice with other values is reported, not dropped."""
    c = collector()
    for cid in range(4):
        c.add(good(cid))
    other = good(2)
    other.worker, other.values = "w9", [v + 1 for v in other.values]
    assert not c.add(other)
    v = c.verdict()
    assert v.duplicate_deliveries == 1 and not v.ok
    assert "delivered twice with different values" in v.problems[0]
    same = good(3)
    same.worker = "w8"
    c.add(same)
    assert c.verdict().duplicate_deliveries == 2 and c.disagreeing_duplicates == 1


def test_a_torn_last_line_of_a_record_file_is_skipped(tmp_path):
    """Finding 12: chunks.jsonl cut mid-line must not block a resume."""
    from ttg_lib.record import read_jsonl

    path = tmp_path / "chunks.jsonl"
    path.write_text('{"chunk_id": 0}\n{"chunk_id": 1}\n{"chunk_id": 2, "work')
    assert read_jsonl(path) == [{"chunk_id": 0}, {"chunk_id": 1}]
