"""A result frame that does not parse is a counted problem, never a crash (README: the wire).

Structured mutations of a valid frame's header (every field given every wrong type, missing
keys, non-string field names, huge and negative sizes, bad lengths, deep nesting) must each
come back from the decoder as raw bytes or as a result verification rejects; injected into
a live run on either broker, each one is counted and the run still finishes and verifies.
"""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Iterator

import pytest
from brokerwire import publish_raw

from ttg_lib.bundles import RECHECK_MAX, bundled, recheck_size
from ttg_lib.compute import placeholder
from ttg_lib.messages import (
    FRAME_MAGIC,
    MessageError,
    Result,
    Task,
    decode_results,
    encode_results,
)
from ttg_lib.run import Run
from ttg_lib.verify import ResultCollector

ROW_FIELDS = ("run_id", "chunk_id", "start", "count", "worker", "attempt", "started_at",
              "finished_at", "error", "redelivered", "enc", "size", "checksum")
# A value of each JSON type; per field, the ones of a type it does not allow are mutations.
ANY_TYPE = {"null": None, "text": "x", "int": 7, "float": 1.5, "bool": True, "list": [],
            "object": {}, "nested": [[1]]}
ALLOWED = {"run_id": {"text"}, "worker": {"text"}, "enc": {"text"},
           "error": {"text", "null"}, "redelivered": {"bool"},
           "started_at": {"int", "float"}, "finished_at": {"int", "float"}}
HUGE = (2**31, 2**62, 2**64, 10**30)


def frame(header: object, payload: bytes = b"", header_len: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(text) if header_len is None else header_len
    return FRAME_MAGIC + struct.pack(">I", length) + text + payload


# The frame from the issue: a header whose field names are not strings (was a TypeError).
ISSUE_FRAME = frame({"fields": [[1]], "rows": [[1]]})


def base(run_id: str, chunk_id: int, size: int = 5) -> tuple[dict, bytes]:
    """A valid one-row frame's header and payload, to mutate."""
    start = chunk_id * size
    good = Result(run_id=run_id, chunk_id=chunk_id, start=start, count=size, worker="fuzz",
                  attempt=1, started_at=1.0, finished_at=2.0,
                  values=[placeholder(p, 0) for p in range(start, start + size)])
    body = encode_results([good])
    (length,) = struct.unpack_from(">I", body, len(FRAME_MAGIC))
    prefix = len(FRAME_MAGIC) + 4
    return json.loads(body[prefix:prefix + length]), body[prefix + length:]


# What the decoder must make of a mutation: "raw" - the frame back whole as bytes (counted
# as undecodable); "bad" - results that verification rejects (out of range, wrong size);
# "meta" - only metadata changed that recomputation cannot check (values still verify).
Mutation = tuple[str, bytes, str]


def mutations(run_id: str, chunk_id: int) -> Iterator[Mutation]:
    """(name, frame, expected) for every structured mutation of a valid frame."""
    header, payload = base(run_id, chunk_id)
    row = header["rows"][0]

    def with_row(name: str, value: object, body: bytes = payload) -> bytes:
        changed = list(row)
        changed[ROW_FIELDS.index(name)] = value
        return frame({**header, "rows": [changed]}, body)

    yield "the issue's frame", ISSUE_FRAME, "raw"
    for name in ROW_FIELDS:  # every field, every wrong type
        for kind, value in ANY_TYPE.items():
            if kind not in ALLOWED.get(name, {"int"}):
                yield f"{name}={kind}", with_row(name, value), "raw"
    for name in ("chunk_id", "start", "count", "attempt", "size"):
        for value in (-1, -(2**63)):
            yield f"{name}={value}", with_row(name, value), "raw"
    for value in HUGE:
        yield f"chunk_id={value}", with_row("chunk_id", value), "bad"
        yield f"start={value}", with_row("start", value), "bad"
        yield f"count={value}", with_row("count", value), "bad"
        yield f"size={value}", with_row("size", value), "raw"  # frame shorter than that
        yield f"attempt={value}", with_row("attempt", value), "meta"
        yield f"checksum={value}", with_row("checksum", value), "bad"  # corrupt: not intact
    yield "count=0", with_row("count", 0), "raw"
    yield "attempt=0", with_row("attempt", 0), "raw"
    yield "enc=unknown", with_row("enc", "zstd"), "bad"  # read as JSON: no values
    deep = b"[" * 100_000 + b"]" * 100_000
    yield "payload deeply nested JSON", frame({**header, "fields": ROW_FIELDS, "rows": [
        [*row[:ROW_FIELDS.index("enc")], "json", len(deep), 0]]}, deep), "bad"
    yield "payload a JSON number", frame({**header, "fields": ROW_FIELDS, "rows": [
        [*row[:ROW_FIELDS.index("enc")], "json", 1, 0]]}, b"5"), "bad"
    for name in ROW_FIELDS:  # a field missing from the names and the row alike
        i = ROW_FIELDS.index(name)
        yield (f"without {name}", frame({**header, "rows": [row[:i] + row[i + 1:]],
                                         "fields": list(ROW_FIELDS[:i] + ROW_FIELDS[i + 1:])},
                                        payload), "raw")
    for key in ("fields", "rows"):
        yield f"header without {key}", frame({k: v for k, v in header.items() if k != key},
                                             payload), "raw"
        for kind, value in ANY_TYPE.items():
            yield f"header {key}={kind}", frame({**header, key: value}, payload), "raw"
    yield "header without v", frame({k: v for k, v in header.items() if k != "v"},
                                    payload), "meta"  # version 1 is the default
    for kind, value in ANY_TYPE.items():
        yield f"header v={kind}", frame({**header, "v": value}, payload), "raw"
        yield f"field name {kind}", frame({**header, "fields": [value, *ROW_FIELDS[1:]]},
                                          payload), "raw"
        yield f"row {kind}", frame({**header, "rows": [value]}, payload), "raw"
    yield "row too short", frame({**header, "rows": [row[:-1]]}, payload), "raw"
    yield "row too long", frame({**header, "rows": [[*row, 0]]}, payload), "raw"
    yield "fields duplicated", frame({**header, "fields": [*ROW_FIELDS, "size"],
                                      "rows": [[*row, 2**40]]}, payload), "raw"
    yield "two rows, one payload", frame({**header, "rows": [row, row]}, payload), "raw"
    yield "header a list", frame([header], payload), "raw"
    yield "header deeply nested", frame(b'{"fields":' + deep + b"}"), "raw"
    yield "header not UTF-8", frame(b"\xff\xfe{", payload), "raw"
    text = json.dumps(header).encode()
    for length in (0, 1, len(text) - 1, len(text) + 1, 2**32 - 1):
        yield f"header length {length}", frame(text, payload, header_len=length), "raw"
    yield "magic only", FRAME_MAGIC, "raw"
    yield "wrong magic", b"TTGX" + frame(header, payload)[4:], "raw"
    yield "empty", b"", "raw"


ALL = list(mutations("r", 0))


def test_the_mutations_are_many_and_distinct():
    assert len(ALL) > 150
    assert len({body for _name, body, _expected in ALL}) == len(ALL)


@pytest.mark.parametrize("name,body,expected", ALL, ids=[name for name, *_ in ALL])
def test_the_decoder_never_raises_and_each_mutation_is_caught(name, body, expected):
    out = decode_results(body)  # must not raise
    if expected == "raw":
        assert out == [body]
        return
    assert out and all(isinstance(item, Result) for item in out), out
    collector = ResultCollector(run_id="r", total_params=20, chunk_size=5)
    for item in out:
        collector.add(item)
    verdict = collector.verdict()
    if expected == "bad":
        assert not verdict.ok and verdict.foreign_results + verdict.wrong_results >= 1
        assert verdict.problems
    else:  # metadata only: the values still verify
        assert verdict.params_verified == 5 and not verdict.wrong_results


def test_text_and_other_buffers_decode_like_bytes():
    assert decode_results(ISSUE_FRAME.decode("latin-1")) == [ISSUE_FRAME.decode("latin-1")
                                                            .encode()]
    assert decode_results("\ud800") == ["\ud800".encode("utf-8", "surrogatepass")]
    header, payload = base("r", 1)
    good = frame(header, payload)
    for buffer in (bytearray(good), memoryview(good)):
        (result,) = decode_results(buffer)
        assert isinstance(result, Result) and result.chunk_id == 1 and not result.corrupt


def test_every_mutation_on_the_results_queue_is_counted_and_the_run_goes_on(
        make_config, backend_name, broker_url):
    """Injected into a live run's results queue: the run finishes, every chunk verified, and
    each injected message is exactly one counted problem (undecodable, or a chunk out of
    range: the base frame names chunk 40 of a 40-chunk run, so nothing forged can count)."""
    cfg = make_config(backend=backend_name, total_params=200, chunk_size=5, work_ms=20.0,
                      timeout_s=60)
    forged = [body for _name, body, _expected in mutations(cfg.run_id, cfg.chunks_total)]
    with Run(cfg) as run:
        run.start()
        injected = False
        deadline = time.monotonic() + 90
        while not run.done and time.monotonic() < deadline:
            progress = run.step(0.05)
            if not injected and progress.fraction >= 0.2:
                publish_raw(backend_name, broker_url, "results", forged)
                injected = True
        assert injected and run.state == "done", run.state
        summary = run.finish()
    assert summary["chunks_completed"] == summary["chunks_total"] == 40
    assert summary["params_verified"] == summary["total_params"]
    assert summary["lost_params"] == 0 and summary["wrong_results"] == 0
    assert summary["foreign_results"] == len(forged)
    assert not summary["ok"]  # forged messages on the results queue fail the verdict
    assert any("undecodable result message" in p for p in summary["problems"])


def _task_json(**changes: object) -> bytes:
    task = Task(run_id="r", chunk_id=2, start=10, count=5, work_ms=0.0,
                compute="ttg_lib.compute:placeholder")
    return json.dumps({**json.loads(task.encode()), **changes}).encode()


def test_a_task_round_trips():
    task = Task.decode(_task_json())
    assert (task.chunk_id, task.start, task.count, task.attempt) == (2, 10, 5, 1)
    assert Task.decode(task.next_attempt().encode()).attempt == 2


def test_a_bundle_round_trips_as_its_chunks_tasks():
    parts = [Task(run_id="r", chunk_id=c, start=10 * c, count=10, work_ms=0.0,
                  compute="ttg_lib.compute:placeholder", only=(1, 2) if c == 3 else None)
             for c in (2, 3, 4)]
    bundle = Task.decode(Task.bundle(parts).encode())
    assert bundle.chunks == 3 and json.loads(Task.bundle(parts).encode())["v"] == 2
    assert bundle.parts() == parts and Task.decode(parts[0].encode()).chunks == 1
    with pytest.raises(ValueError, match="differ in more than their chunk"):
        Task.bundle([parts[0], parts[1].verification("w1")])


def test_bundled_groups_alike_tasks_up_to_a_size_in_order():
    def t(c: int, of: str = "") -> Task:
        return Task(run_id="r", chunk_id=c, start=c, count=1, work_ms=0.0, compute="m:f",
                    verify_of=of)

    out = list(bundled([t(0), t(1, "a"), t(2), t(3), t(4, "a"), t(5)], 3))
    assert [[p.chunk_id for p in b.parts()] for b in out] == [[0, 2, 3], [1, 4], [5]]
    assert [b.chunks for b in bundled([t(0), t(1)], 1)] == [1, 1]  # 1: no bundles


def test_recomputations_of_cheap_chunks_travel_in_larger_bundles_than_slow_ones():
    assert recheck_size(16, 500 * 30e-6, 500) == RECHECK_MAX  # 30 µs a chunk: the cap
    assert recheck_size(1, 100 * 1e-3, 100) == 20  # 1 ms a chunk: ~20 ms a message
    assert recheck_size(16, 10 * 0.5, 10) == 16  # slow: as the run's tasks travel
    assert recheck_size(1, 10 * 0.5, 10) == 1
    assert recheck_size(4, 0.0, 0) == 4 and recheck_size(4, 0.0, 3) == RECHECK_MAX


@pytest.mark.parametrize("changes,reason", [
    ({"count": 0}, "count >= 1"), ({"count": -3}, "count >= 1"),
    ({"start": -1}, "start/chunk_id must be >= 0"), ({"chunk_id": -1}, "must be >= 0"),
    ({"v": 3}, "protocol version 3 is not 1 or 2"),
    ({"v": 2}, "only a bundle lists 'more'"), ({"more": [[1, 10, 10, None]]}, "a bundle"),
    ({"v": 2, "more": [[1, 10]]}, "a bundle part is [chunk_id"),
    ({"v": 2, "more": [[1, 10, 0, None]]}, "count >= 1"),
    ({"v": 2, "more": [[1, 10, 2, [5]]]}, "offsets within the chunk"),
    ({"v": "1"}, "protocol version '1' is not 1"), ({"v": True}, "protocol version True is not 1"),
    ({"count": 5.0}, "field 'count' has type float"), ({"attempt": None}, "has type NoneType"),
])
def test_a_bad_task_is_a_message_error_with_its_reason(changes, reason):
    with pytest.raises(MessageError, match=re.escape(reason)):
        Task.decode(_task_json(**changes))


@pytest.mark.parametrize("body", [b"[" * 100_000, b"\xff", b"[]", b"", "\ud800"])
def test_an_unreadable_task_is_a_message_error(body):
    with pytest.raises(MessageError, match="malformed message"):
        Task.decode(body)


def test_dict_values_fingerprint_from_their_bytes_as_if_packed_again():
    from ttg_lib.packing import ValueColumns
    from ttg_lib.values import normalise
    from ttg_lib.verify import fingerprint

    rows = normalise([{"n": i, "x": i / 3 if i % 2 else i, "flag": None if i % 3 else True,
                       "tag": "é\ud800" if i == 5 else f"t{i}", "big": 2**70 + i}
                      for i in range(40)])[0]
    (decoded,) = decode_results(Result("r", 0, 0, 40, "w", 1, 0.0, 1.0, values=rows).encode())
    assert isinstance(decoded.values, ValueColumns) and decoded.values.crc is not None
    repacked = ValueColumns(decoded.values.columns)  # no crc: packed again to fingerprint
    assert fingerprint(decoded.values) == fingerprint(repacked)
    changed = [dict(r) for r in rows]
    changed[7]["x"] += 1e-9
    (other,) = decode_results(Result("r", 0, 0, 40, "w", 1, 0.0, 1.0, values=changed).encode())
    assert fingerprint(other.values) != fingerprint(decoded.values)


@pytest.mark.parametrize("values", [[placeholder(i, 0) for i in range(100)],
                                    [i / 7 for i in range(100)] + [float("nan"), -0.0],
                                    []])
def test_values_unpacked_pack_again_to_their_bytes_without_a_value_made(values):
    """verify.fingerprint packs what the wire unpacked (array('q'), array('d')): the same
    bytes, taken as they are, as packing the values themselves gives."""
    from ttg_lib.messages import pack_values, unpack
    from ttg_lib.verify import fingerprint

    enc, raw = pack_values(values)
    again = unpack(enc, memoryview(raw))
    assert pack_values(again) == (enc, raw)
    assert fingerprint(again) == fingerprint(values)
