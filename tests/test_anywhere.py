"""Issue 20, your function from anywhere: the working directory, functions by value, the
Python API's checks, and workers joining the broker's current run. The unit parts run on the
in-memory backend; tests/test_anywhere_e2e.py runs the processes on both brokers."""

from __future__ import annotations

import functools
import hashlib
import sys
import threading
import time
import uuid

import numpy as np
import pytest
from inthread import memory_broker, thread_worker

from ttg_lib import byvalue, compute
from ttg_lib.api import sweep, sweep_options
from ttg_lib.backends.blobs import CURRENT_RUN
from ttg_lib.errors import ComputeImportError, ConfigError
from ttg_lib.messages import Result, Task, decode_results
from ttg_lib.worker import Worker


def scaled(x: float, factor: float) -> float:
    return x * factor


def test_a_lambda_a_closure_and_a_partial_travel_by_value():
    table = np.arange(5.0) ** 2
    for fn, args, want in [(lambda a, b: a + b, (2, 3), 5),
                           ((lambda t: (lambda i: float(t[i])))(table), (3,), 9.0),
                           (functools.partial(scaled, factor=4.0), (2.0,), 8.0)]:
        assert byvalue.should_ship(fn)
        shipped = byvalue.ShippedFunction.of(fn)
        assert shipped.sha256 == hashlib.sha256(shipped.payload).hexdigest()
        assert shipped.ref == "sha256:" + shipped.sha256
        assert ":" in shipped.name and shipped.name.count(":") == 1
        loaded = byvalue.unpickle(shipped.payload, shipped.sha256, shipped.ref)
        assert loaded(*args) == want


def test_a_function_shipped_by_value_names_its_file_in_tracebacks(tmp_path, monkeypatch):
    """cloudpickle names shipped code "<dynamic-code>"; loaded, the function (and its
    module's helpers) say their file again, so a failed point's trace shows file and line."""
    import importlib
    import traceback

    (tmp_path / "flaky_model.py").write_text(
        "def helper(x):\n    raise ValueError(x)\n\n\ndef model(x):\n    return helper(x) + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "flaky_model", raising=False)
    module = importlib.import_module("flaky_model")
    shipped = byvalue.ShippedFunction.of(module.model, "flaky_model:model")
    monkeypatch.delitem(sys.modules, "flaky_model")
    loaded = byvalue.unpickle(shipped.payload, shipped.sha256, shipped.ref)
    assert loaded is not module.model
    with pytest.raises(ValueError) as err:
        loaded(3)
    frames = traceback.extract_tb(err.value.__traceback__)[-2:]
    assert [f.filename for f in frames] == [str(tmp_path / "flaky_model.py")] * 2
    assert [f.line for f in frames] == ["return helper(x) + 1", "raise ValueError(x)"]


def test_installed_functions_go_by_import_path_and_project_ones_by_value():
    assert not byvalue.should_ship(compute.placeholder)  # TTG's own: every worker has it
    assert byvalue.import_path(compute.placeholder) == "ttg_lib.compute:placeholder"
    assert byvalue.should_ship(scaled)  # this test module is no installed distribution
    assert byvalue.importable_everywhere("numpy.linalg")
    assert byvalue.importable_everywhere("json")
    assert not byvalue.importable_everywhere("__main__")


def test_a_100_mib_closure_is_one_clear_error():
    big = np.ones(100 << 17)  # 100 MiB of float64

    def heavy(i: int) -> float:
        return float(big[i])

    with pytest.raises(ConfigError) as err:
        byvalue.ShippedFunction.of(heavy)
    text = str(err.value)
    assert "64 MiB" in text and "100 MiB" in text and "'module:function'" in text


def test_resolve_loads_once_and_checks_the_fingerprint():
    shipped = byvalue.ShippedFunction.of(lambda x: x * 3)
    calls = []

    def fetch(key: str) -> bytes | None:
        calls.append(key)
        return shipped.payload

    fn = byvalue.resolve(shipped.ref, fetch)
    assert fn(2) == 6 and byvalue.resolve(shipped.ref, fetch) is fn
    assert calls == [shipped.sha256]  # fetched once per process
    other = byvalue.ShippedFunction.of(lambda x: x * 5)
    with pytest.raises(ComputeImportError, match="does not match its sha256"):
        byvalue.resolve(other.ref, lambda key: shipped.payload)  # wrong bytes
    with pytest.raises(ComputeImportError, match="stored none"):
        byvalue.resolve("sha256:" + "0" * 64, lambda key: None)
    assert byvalue.resolve("ttg_lib.compute:placeholder") is compute.placeholder


def test_the_working_directory_is_searched_and_named_when_the_module_is_missing(
        tmp_path, monkeypatch):
    name = f"mymodel_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("def simulate(a):\n    return a + 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert compute.load(f"{name}:simulate")(1) == 2
    with pytest.raises(ComputeImportError) as err:
        compute.load("no_such_model_here:simulate")
    assert str(tmp_path) in str(err.value) and "does not import" in str(err.value)


def test_results_carry_the_fingerprint():
    result = Result(run_id="r", chunk_id=0, start=0, count=1, worker="w", attempt=1,
                    started_at=1.0, finished_at=2.0, values=[1], compute_sha256="ab" * 32)
    (decoded,) = decode_results(result.encode())
    assert isinstance(decoded, Result) and decoded.compute_sha256 == "ab" * 32


def test_every_run_option_is_a_keyword_and_a_wrong_one_names_them():
    assert {"backend", "workers", "verify", "expect_workers", "chunk_size"} <= set(
        sweep_options())
    with pytest.raises(ConfigError, match="unknown setting; allowed:.*workers"):
        sweep(scaled, None, wokers=3)
    with pytest.raises(ConfigError, match="given by sweep's own arguments"):
        sweep(scaled, None, compute="x:y")


# -- workers and runs: which run's task a worker takes ---------------------------------
@pytest.fixture
def memory():
    yield from memory_broker("anywhere")


def task(run_id: str, chunk_id: int = 0) -> Task:
    return Task(run_id=run_id, chunk_id=chunk_id, start=chunk_id, count=1, work_ms=0,
                compute="ttg_lib.compute:placeholder")


def start_worker(url: str, run_id: str = "") -> tuple[Worker, threading.Thread]:
    return thread_worker(url, run_id, "j1")


def test_a_worker_pinned_to_a_finished_run_leaves_the_current_runs_task_and_stops(memory):
    url, producer = memory
    producer.put_blob(CURRENT_RUN, b"run-new")
    producer.publish_tasks([task("run-new")])
    worker, thread = start_worker(url, run_id="run-old")
    thread.join(5)
    assert not thread.is_alive(), "the pinned worker did not stop"
    assert producer.read_dead_letters() == []
    assert producer.stats().tasks.ready == 1  # the task waits for its run's workers
    assert Task.decode(producer.b.ready[0][1]) == task("run-new")


def test_a_joining_worker_takes_the_current_run_and_dead_letters_a_stray(memory):
    url, producer = memory
    producer.put_blob(CURRENT_RUN, b"run-now")
    producer.publish_tasks([task("run-gone", 0), task("run-now", 1)])
    worker, thread = start_worker(url)
    got: list = []
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        got += producer.read_results(0.05)
    worker.stopping.set()
    thread.join(5)
    assert [(r.run_id, r.chunk_id) for r in got] == [("run-now", 1)]
    (dead,) = producer.read_dead_letters()
    assert "run-gone" in dead["body"] and dead["attempts"] == 1


def test_amqps_is_verified(monkeypatch):
    """No TLS RabbitMQ here: the connection parameters pika gets are checked instead."""
    import ssl

    import pika

    from ttg_lib.backends import rabbitmq
    from ttg_lib.backends.tls import TLS_CA_ENV

    seen = {}

    def capture(params):
        seen["params"] = params
        raise pika.exceptions.AMQPConnectionError("captured")

    monkeypatch.setattr(rabbitmq.pika, "BlockingConnection", capture)
    monkeypatch.delenv(TLS_CA_ENV, raising=False)
    consumer = rabbitmq.RabbitInspector("amqps://u:p@broker.example.org:5671/%2F")
    with pytest.raises(Exception, match="captured"):
        consumer.connect()
    options = seen["params"].ssl_options
    assert options is not None and options.server_hostname == "broker.example.org"
    assert options.context.verify_mode == ssl.CERT_REQUIRED and options.context.check_hostname
    seen.clear()
    with pytest.raises(Exception, match="captured"):
        rabbitmq.RabbitInspector("amqp://u:p@127.0.0.1:5672/%2F").connect()
    assert seen["params"].ssl_options is None  # plain AMQP stays plain
