"""Containment without a broker: return values made storable, per-point failures and
retries, the supervisor's crash, hang and recycle handling, the failure budget."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import math

import numpy as np
import pytest

from ttg_lib.config import RunConfig
from ttg_lib.errors import ConfigError
from ttg_lib.failures import FailureBudget, error_type
from ttg_lib.messages import Packed, PointFailure, Result, Task, decode_results, pack_values
from ttg_lib.points import compute_chunk
from ttg_lib.supervise import PointClock, Supervisor
from ttg_lib.values import normalise, storable

SPACE = {"axes": {"x": {"range": [0, 64]}}}


def task(compute: str, start: int = 0, count: int = 8, **kw) -> Task:
    return Task(run_id="u", chunk_id=start // count, start=start, count=count, work_ms=0,
                compute=compute, space=SPACE, **kw)


@dataclasses.dataclass
class Fit:
    loss: float
    steps: int


class Model:  # pydantic-like
    def model_dump(self) -> dict:
        return {"a": np.int16(3)}


@pytest.mark.parametrize("value,stored", [
    (np.float32(0.1), float(np.float32(0.1))), (np.float16(2.5), 2.5),
    (np.int8(-3), -3), (np.uint64(2**64 - 1), 2**64 - 1), (np.bool_(True), True),
    (None, None), (math.inf, math.inf), ("ok", "ok"), (b"\x01", "AQ=="),
    (decimal.Decimal("1.10"), "1.10"), (dt.date(2026, 1, 2), "2026-01-02"),
    (dt.timedelta(seconds=90), 90.0), ((1, np.int64(2)), [1, 2]),
    (np.array([[1, 2]]), [[1, 2]]), ({"k": np.float64(1.5)}, {"k": 1.5}),
    ({2: "two"}, {"2": "two"}), (Fit(0.5, 3), {"loss": 0.5, "steps": 3}),
    (Model(), {"a": 3}), (1 + 2j, {"real": 1.0, "imag": 2.0}),
    (np.datetime64("2026-01-02T03:04"), "2026-01-02T03:04"), ("bad\udcff", "bad\\udcff"),
])
def test_every_value_in_the_table_becomes_storable(value, stored):
    assert storable(value) == stored
    assert type(storable(value)) is type(stored)


def test_what_cannot_be_stored_is_that_points_error_and_packing_never_raises():
    values, errors = normalise([1.5, object(), {1: "a", "1": "b"}, np.float32(2.0)])
    assert values == [1.5, None, None, 2.0]
    assert errors == {1: "cannot store a value of type object",
                      2: "cannot store a dict whose keys '1' collide as text"}
    plain = [1, 2, 3]
    assert normalise(plain)[0] is plain  # the fast path: nothing copied
    assert pack_values([np.int64(1), object()])[0] == "json"  # never raises


def test_dicts_sharing_their_keys_are_checked_a_column_at_a_time_like_one_by_one():
    rows = [{"id": i, "x": i / 2, "tag": f"t{i}", "ok": None} for i in range(50)]
    assert normalise(rows)[0] is rows  # plain: the fast path, nothing copied
    for bad in ({"id": 1, "x": 0.5, "tag": "t\ud800", "ok": None},  # a lone surrogate
                {"id": 1, "x": [0.5], "tag": "t", "ok": None},  # a nested value
                {"id": 1, "x": np.float32(0.5), "tag": "t", "ok": None}):  # not plain
        values, errors = normalise([*rows, bad])  # the slow path: each value made storable
        assert values[:50] == rows and values[50] == storable(bad) and errors == {}
    assert storable({"tag": "t\ud800"}) == {"tag": "t\\ud800"}  # escaped, not kept as is
    bad_key = {"id\udc00": 1, "x": 0.5, "tag": "t", "ok": None}
    assert normalise([*rows, bad_key])[0][50] == storable(bad_key)  # as one by one


def test_an_int64_stays_an_int_column_and_a_float32_keeps_its_value():
    outcome = compute_chunk(lambda x: np.int64(x), task("m:f"))
    assert outcome.values.enc == "i64"
    outcome = compute_chunk(lambda x: np.float32(x + 0.25), task("m:f"))
    assert outcome.values.enc == "f64"


def three_raises(max_retries: int, retry_delay_s: float):
    """The chunk of x = 0..7 through a function raising for x = 3: (outcome, calls, sleeps)."""
    calls: list[int] = []
    slept: list[float] = []

    def fn(x: int) -> int:
        calls.append(x)
        if x == 3:
            raise ValueError("three")
        return x

    outcome = compute_chunk(fn, task("m:f", max_retries=max_retries,
                                     retry_delay_s=retry_delay_s), sleep=slept.append)
    return outcome, calls, slept


def test_a_raising_point_fails_alone_and_is_retried_on_its_own():
    outcome, calls, slept = three_raises(max_retries=2, retry_delay_s=0.5)
    assert calls == [0, 1, 2, 3, 4, 5, 6, 7, 3, 3] and slept == [0.5, 1.0]
    (failure,) = outcome.failures
    assert (failure.offset, failure.error, failure.attempts) == (3, "ValueError: three", 3)
    assert "raise ValueError" in failure.trace
    assert "points.py" not in failure.trace  # TTG's calling frames: nothing to act on
    result = Result(run_id="u", chunk_id=0, start=0, count=8, worker="w", attempt=1,
                    started_at=0, finished_at=0, values=outcome.values,
                    failures=outcome.failures)
    (decoded,) = decode_results(result.encode())
    assert list(decoded.values) == [0, 1, 2, None, 4, 5, 6, 7]
    assert decoded.failures == outcome.failures


def test_by_default_a_raising_point_is_retried_once_and_nothing_waits():
    """A 1 % failure rate must cost about its own points: with the old defaults (3 retries
    waiting 1 + 2 + 4 s in the compute process) every chunk holding a bad point took 7 s, and
    a 3,000-point sweep in chunks of 100 ended timed-out."""
    cfg = RunConfig(compute="mymod:f", space=SPACE)
    outcome, calls, slept = three_raises(cfg.max_retries, cfg.retry_delay_s)
    assert calls == [0, 1, 2, 3, 4, 5, 6, 7, 3]
    assert not any(slept)
    assert [(f.offset, f.attempts) for f in outcome.failures] == [(3, 2)]


def test_a_users_function_has_no_wall_clock_limit_unless_given():
    """Its cost is unknown: a sweep of 75 s of work must not end timed-out at 61 s. TTG's own
    simulated work keeps its generous default, and a given --timeout always holds."""
    assert RunConfig(compute="mymod:f", space=SPACE).effective_timeout_s == 0
    assert RunConfig(compute="mymod:f", space=SPACE, timeout_s=30).effective_timeout_s == 30
    assert RunConfig(scale="small").effective_timeout_s > 60


def test_only_computes_the_points_asked_for():
    calls: list[int] = []
    outcome = compute_chunk(lambda x: calls.append(x) or x, task("m:f", only=(2, 5)))
    assert calls == [2, 5] and outcome.failures == []


def test_a_malformed_point_failure_is_a_malformed_frame():
    result = Result(run_id="u", chunk_id=0, start=0, count=2, worker="w", attempt=1,
                    started_at=0, finished_at=0, values=Packed("json", b"[1,null]", None, 2),
                    failures=[PointFailure(5, "outside")])
    assert isinstance(decode_results(result.encode())[0], bytes)


@pytest.mark.slow  # starts compute processes and waits out a limit
def test_the_supervisor_contains_crashes_and_hangs_and_recycles():
    supervisor = Supervisor()
    try:
        tasks = [task("ttg_lib.misbehave:kills_itself", start=0),
                 task("ttg_lib.misbehave:kills_itself", start=8, recycle_after=1)]
        crashed, fine = supervisor.run(tasks, keepalive=lambda: None)
        assert [(f.offset, f.error, f.attempts) for f in crashed.failures] == [
            (7, "crashed: signal 9 (SIGKILL)", 2)]
        assert fine.failures == [] and len(fine.values) == 8
        hung = task("ttg_lib.misbehave:hangs", start=24, point_timeout_s=1.0,
                    recycle_after=1)
        (outcome,) = supervisor.run([hung], keepalive=lambda: None)
        assert [(f.offset, f.error) for f in outcome.failures] == [(1, "timeout after 1 s")]
        assert supervisor.counters.timeouts == 1 and supervisor.counters.recycled == 1
    finally:
        supervisor.close()


@pytest.mark.slow  # starts compute processes
def test_the_compute_process_starts_the_next_batch_before_this_one_is_collected():
    import time

    supervisor = Supervisor()
    try:
        first = supervisor.submit([task("ttg_lib.misbehave:raises_at_13", start=0)])
        second = supervisor.submit([task("ttg_lib.misbehave:raises_at_13", start=8)])
        deadline = time.monotonic() + 30
        while supervisor.child.where()[0] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # the cursor is shared memory: nothing to wait on
        assert supervisor.child.where()[0] == 2  # nobody collected the first batch yet
        (one,) = supervisor.collect(first, keepalive=lambda: None)
        (two,) = supervisor.collect(second, keepalive=lambda: None)
        assert one.failures == [] and len(one.values) == 8
        assert [(f.offset, f.error) for f in two.failures] == [(5, "ValueError: 13 is unlucky")]
    finally:
        supervisor.close()


@pytest.mark.slow  # starts compute processes
def test_a_crash_with_two_batches_in_flight_fails_its_point_and_both_complete():
    supervisor = Supervisor()
    try:
        first = supervisor.submit([task("ttg_lib.misbehave:kills_itself", start=0)])
        second = supervisor.submit([task("ttg_lib.misbehave:kills_itself", start=8),
                                    task("ttg_lib.misbehave:kills_itself", start=16)])
        (one,) = supervisor.collect(first, keepalive=lambda: None)
        two, three = supervisor.collect(second, keepalive=lambda: None)
        assert [(f.offset, f.error) for f in one.failures] == [
            (7, "crashed: signal 9 (SIGKILL)")]
        assert two.failures == [] and len(two.values) == 8
        assert [(f.offset, f.error) for f in three.failures] == [
            (7, "crashed: signal 11 (SIGSEGV)")]  # x = 23, sent to three processes
        assert supervisor.counters.crashes == 4 and supervisor.counters.started == 5
    finally:
        supervisor.close()


def test_auto_point_timeout_is_ten_times_p99_never_under_ten_seconds():
    clock = PointClock()
    assert clock.limit() == 0.0  # no points yet: no limit
    clock.add([0.01] * 100)
    assert clock.limit() == 10.0
    clock.add([3.0] * 100)
    assert clock.limit() == 30.0


def test_auto_counts_untracked_chunks_and_falls_back_on_the_runs_limit():
    """Chunks of fast points carry no durations: they count at their mean, so chunks of 8
    teach a limit too; a worker with none of its own asks for the run's, past the floor."""
    clock = PointClock()
    clock.add([0.001] * 8)  # the first chunk: tracked, 8 points
    assert clock.limit() == 0.0
    clock.add_mean(0.00001, 8)
    assert clock.limit() == 10.0
    asked: list[str] = []
    sup = Supervisor(shared_limit=lambda run: asked.append(run) or 12.5)
    auto = task("ttg_lib.misbehave:hangs", point_timeout_s=-1.0)
    assert sup.limit_of(auto) == 0.0 and not asked  # not asked until a point runs long
    assert sup._shared_limit(auto) == 12.5 and asked == ["u"]
    assert sup._shared_limit(auto) == 12.5 and asked == ["u"]  # kept; not asked again soon
    assert sup.limit_of(task("x:y", point_timeout_s=5.0)) == 5.0


@pytest.mark.parametrize("text,allowed", [("5", 5), ("2%", 20), (3, 3)])
def test_the_failure_budget_reads_points_or_a_percentage(text, allowed):
    assert FailureBudget.parse(text).allowed(1000) == allowed


@pytest.mark.parametrize("field,value", [("max_failures", "lots"), ("max_failures", "150%"),
                                         ("point_timeout", "soon"), ("point_timeout", -1),
                                         ("max_crashes", -1)])
def test_bad_containment_settings_are_one_clear_error(field, value):
    with pytest.raises(ConfigError, match=field):
        RunConfig.build(**{field: value})


def test_point_timeout_comes_from_a_flag_or_the_space_file():
    assert RunConfig.build(point_timeout="auto").point_timeout_s == -1.0
    assert RunConfig.build(point_timeout=" 7.5 ").point_timeout_s == 7.5
    from_space = RunConfig.build(space={**SPACE, "point_timeout": 30})
    assert from_space.point_timeout == "30" and "point_timeout" not in from_space.space
    assert RunConfig.build(space={**SPACE, "point_timeout": 30},
                           point_timeout="5").point_timeout == "5"


@pytest.mark.parametrize("error,kind", [
    ("ValueError: x", "ValueError"), ("crashed: signal 9 (SIGKILL)", "crashed"),
    ("timeout after 5 s", "timeout"), ("cannot store a value of type object", "cannot store"),
    ("failed after 3 attempts: KeyError: 'a'", "KeyError"), ("numpy.linalg.LinAlgError: s",
                                                              "numpy.linalg.LinAlgError")])
def test_error_types(error, kind):
    assert error_type(error) == kind


@pytest.mark.slow  # starts compute processes and waits out a limit
def test_a_point_running_long_shows_in_the_heartbeat_and_ttg_monitor(tmp_path, monkeypatch):
    import json
    import threading
    import time
    import uuid

    from ttg_lib import worker as worker_module
    from ttg_lib.backends import open_consumer, open_producer
    from ttg_lib.monitor import slow_points
    from ttg_lib.worker import Worker, WorkerSettings

    monkeypatch.setattr(worker_module, "SLOW_POINT_S", 0.3)  # a minute, for a unit test
    url = f"memory://unit-{uuid.uuid4().hex}"
    producer = open_producer("memory", url)
    producer.connect()
    producer.declare()
    producer.publish_tasks([task("ttg_lib.misbehave:hangs", start=24, point_timeout_s=3.0)])
    beat = tmp_path / "workers" / "w1.json"
    worker = Worker(WorkerSettings(backend="memory", url=url, run_id="u", name="w1",
                                   heartbeat_file=str(beat)), open_consumer("memory", url))
    worker.FETCH_WAIT_S = 0.05
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        deadline, seen = time.monotonic() + 10, []
        while not (seen and seen[0]["param_id"] is not None) and time.monotonic() < deadline:
            seen = slow_points(tmp_path)  # param_id None first, while the function loads
            time.sleep(0.05)  # the heartbeat file is rewritten by another thread
        assert seen and seen[0]["worker"] == "w1" and seen[0]["param_id"] == 25
        assert seen[0]["chunk"] == 3 and seen[0]["seconds"] >= 0.3
        deadline, got = time.monotonic() + 10, []
        while not got and time.monotonic() < deadline:
            got = producer.read_results(0.1)
        (result,) = got
        assert [(f.offset, f.error) for f in result.failures] == [(1, "timeout after 3 s")]
        assert result.finished_at - result.started_at >= 3.0  # from its first start
    finally:
        worker.stopping.set()
        thread.join(5)
        producer.close()
    assert json.loads(beat.read_text())["point_timeouts"] == 1  # the last beat: always written


def _result(chunk: int, values: list, failures: tuple = (), attempt: int = 1,
            worker: str = "w1") -> Result:
    return Result(run_id="u", chunk_id=chunk, start=chunk * 4, count=4, worker=worker,
                  attempt=attempt, started_at=0, finished_at=0, values=values,
                  failures=list(failures))


def test_retry_failed_replaces_only_the_failed_rows_in_the_table(tmp_path):
    from ttg_lib import load_results
    from ttg_lib.results import ResultsWriter, failed_chunks, result_files
    from ttg_lib.retryfailed import FailedPoints

    bad = PointFailure(1, "ValueError: no", attempts=2)
    with ResultsWriter(tmp_path) as writer:
        writer.add(_result(0, [0.0, None, 2.0, 3.0], [bad]))
        writer.add(_result(1, [4.0, 5.0, 6.0, 7.0]))
    before = load_results(tmp_path)
    assert before["error"].fillna("").tolist() == ["", "ValueError: no"] + [""] * 6
    assert before["attempt"].tolist() == [1, 2, 1, 1, 1, 1, 1, 1]
    assert failed_chunks(tmp_path, 4, 8) == set()  # a point failed alone: the chunk is done

    failed = FailedPoints.read(result_files(tmp_path), 4)
    assert (failed.offsets, failed.attempts, failed.count) == ({0: [1]}, {0: 2}, 1)
    retried = failed.task(task("m:f", start=0, count=4))
    assert retried.only == (1,) and retried.attempt == 3
    writer = ResultsWriter(tmp_path)
    writer.retry(failed)
    writer.add(_result(0, [None, 1.0, None, None], attempt=3, worker="w9"))  # only= (1,)
    writer.close()
    after = load_results(tmp_path)
    assert after["param_id"].tolist() == list(range(8)) and after["error"].isna().all()
    assert after["value"].tolist() == [float(x) for x in range(8)]
    assert [str(w) for w in after["worker"]] == ["w1", "w9"] + ["w1"] * 6
    assert after["attempt"].tolist() == [1, 3, 1, 1, 1, 1, 1, 1]


def test_an_interrupted_retry_drops_no_row_it_has_not_replaced(tmp_path):
    from ttg_lib import load_results
    from ttg_lib.results import ResultsWriter, result_files
    from ttg_lib.retryfailed import FailedPoints

    with ResultsWriter(tmp_path) as writer:
        writer.add(_result(0, [None, 1.0, 2.0, 3.0], [PointFailure(0, "E: a")]))
        writer.add(_result(1, [4.0, None, 6.0, 7.0], [PointFailure(1, "E: b")]))
    writer = ResultsWriter(tmp_path)
    writer.retry(FailedPoints.read(result_files(tmp_path), 4))
    writer.add(_result(0, [0.0, None, None, None], attempt=2))  # chunk 1 not back yet
    writer.flush()  # ... and the orchestrator dies here; a later one closes the table
    ResultsWriter(tmp_path).close()
    after = load_results(tmp_path)
    assert after["param_id"].tolist() == list(range(8))
    assert after["error"].fillna("").tolist() == ["", "", "", "", "", "E: b", "", ""]
    assert after["value"].fillna(-1).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, -1, 6.0, 7.0]


@pytest.mark.slow  # starts compute processes and waits out a limit
def test_a_memory_cap_recycles_the_compute_process_between_batches():
    supervisor = Supervisor()
    try:
        capped = task("ttg_lib.misbehave:raises_at_13", start=0, max_worker_mib=1.0)
        for _ in range(3):
            supervisor.run([capped], keepalive=lambda: None)
        assert supervisor.counters.recycled == 2 and supervisor.counters.started == 3
    finally:
        supervisor.close()


def test_retry_failed_needs_resume():
    from click.testing import CliRunner

    from ttg_lib.cli import main

    out = CliRunner().invoke(main, ["run", "--retry-failed"])
    assert out.exit_code == 2 and "--resume RUN" in out.output


def test_a_second_retry_after_an_interrupted_one_leaves_one_row_a_point(tmp_path):
    from ttg_lib import load_results
    from ttg_lib.results import ResultsWriter, result_files
    from ttg_lib.retryfailed import FailedPoints

    with ResultsWriter(tmp_path) as writer:
        writer.add(_result(0, [None, 1.0, 2.0, 3.0], [PointFailure(0, "E: a")]))
        writer.add(_result(1, [4.0, None, 6.0, 7.0], [PointFailure(1, "E: b")]))
    writer = ResultsWriter(tmp_path)
    writer.retry(FailedPoints.read(result_files(tmp_path), 4))
    writer.add(_result(0, [0.0, None, None, None], attempt=2))
    writer.flush()  # interrupted: chunk 1 never came back
    again = FailedPoints.read(result_files(tmp_path), 4)
    assert again.offsets == {1: [1]}  # point 0's latest row has its value
    writer = ResultsWriter(tmp_path)
    writer.retry(again)
    writer.add(_result(1, [None, 5.0, None, None], attempt=2))
    writer.close()
    after = load_results(tmp_path)
    assert after["param_id"].tolist() == list(range(8)) and after["error"].isna().all()
    assert after["value"].tolist() == [float(x) for x in range(8)]


def test_a_chunk_whose_every_point_failed_for_good_does_not_load_its_function():
    from ttg_lib.points import Job, compute_job

    dead = task("no.such.module:fn", count=2)
    outcome = compute_job(Job(dead, skip={0: PointFailure(0, "crashed: signal 11 (SIGSEGV)"),
                                          1: PointFailure(1, "crashed: signal 11 (SIGSEGV)")}))
    assert outcome.load_error is None and len(outcome.failures) == 2


@pytest.mark.slow  # starts compute processes
def test_a_function_whose_import_crashes_fails_its_points_and_ends(tmp_path, monkeypatch):
    import os

    (tmp_path / "crashy.py").write_text("import ctypes\nctypes.string_at(0)\n\n"
                                        "def fn(x):\n    return x\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path),
                                                      os.environ.get("PYTHONPATH", "")]))
    supervisor = Supervisor()
    try:
        (outcome,) = supervisor.run([task("crashy:fn", count=3)], keepalive=lambda: None)
        assert [f.error for f in outcome.failures] == ["crashed: signal 11 (SIGSEGV)"] * 3
    finally:
        supervisor.close()
