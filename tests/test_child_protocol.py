"""The compute process's frames (ttg_lib/child.py send/receive): packed values travel out of
band and arrive as views into one buffer, whatever their sizes; a pipe closed within a
frame is an end-of-file, as it was for a pickle."""

from __future__ import annotations

import os
import pickle
import socket
import threading
from multiprocessing.connection import Connection

import pytest

from ttg_lib import child
from ttg_lib.messages import Packed, PointFailure, Result, encode_results
from ttg_lib.points import ChunkOutcome


def pair() -> tuple[Connection, Connection]:
    a, b = socket.socketpair()
    return Connection(a.detach()), Connection(b.detach())


def outcome(chunk_id: int, raw: bytes) -> ChunkOutcome:
    return ChunkOutcome(chunk_id, Packed("i64", raw, None, len(raw) // 8),
                        [PointFailure(0, "ValueError: x")], 1.0, 2.0, 0.5)


def test_values_arrive_whole_as_views_into_one_buffer_even_past_the_socket_buffer():
    ours, theirs = pair()
    sizes = [0, 8, 8 * 1000, 3 * 1024 * 1024, 16]  # one larger than any socket buffer
    sent = [outcome(i, os.urandom(size)) for i, size in enumerate(sizes)]
    writer = threading.Thread(target=child.send, args=(theirs, ("done", sent, 1.5)))
    writer.start()
    kind, got, cpu = child.receive(ours)
    writer.join()
    assert (kind, cpu) == ("done", 1.5)
    assert [bytes(o.values.raw) for o in got] == [o.values.raw for o in sent]
    assert all(isinstance(o.values.raw, memoryview) for o in got)
    assert [o.failures for o in got] == [o.failures for o in sent]
    # the worker publishes them as they are: the same frame as from bytes
    results = [Result("r", o.chunk_id, 0, o.values.count, "w", 1, 1.0, 2.0, values=o.values)
               for o in got]
    expected = [Result("r", o.chunk_id, 0, o.values.count, "w", 1, 1.0, 2.0, values=o.values)
                for o in sent]
    assert encode_results(results) == encode_results(expected)


def test_a_message_without_values_and_many_small_ones():
    ours, theirs = pair()
    child.send(theirs, ("ready", [], 0.25))
    assert child.receive(ours) == ("ready", [], 0.25)
    many = [outcome(i, bytes([i % 256]) * 8) for i in range(1500)]  # more than one writev
    writer = threading.Thread(target=child.send, args=(theirs, ("done", many, 0.0)))
    writer.start()
    got = child.receive(ours)[1]
    writer.join()
    assert [bytes(o.values.raw) for o in got] == [o.values.raw for o in many]


def test_a_pipe_closed_within_a_frame_is_an_end_of_file():
    ours, theirs = pair()
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(("done", [outcome(0, b"x" * 800)], 0.0), protocol=5,
                        buffer_callback=buffers.append)
    theirs.send_bytes(child._COUNT.pack(1) + (800).to_bytes(8, "little") + data)
    os.write(theirs.fileno(), b"x" * 100)  # the values cut short: the process died
    theirs.close()
    with pytest.raises(EOFError):
        child.receive(ours)


def test_packed_values_pickle_in_band_as_before():
    packed = Packed("i64", b"\x01" * 16, None, 2)
    for protocol in (4, 5):
        again = pickle.loads(pickle.dumps(packed, protocol=protocol))
        assert again == packed and bytes(again.raw) == packed.raw
