import json

import pytest
from conftest import ttg_in_process

from ttg_lib.config import ConfigError, RunConfig


def test_defaults_are_the_small_redis_demo():
    cfg = RunConfig.build()
    assert (cfg.backend, cfg.scale, cfg.workers, cfg.cluster) == ("redis", "small", 3, "local")
    assert (cfg.total_params, cfg.chunk_size, cfg.work_ms) == (1000, 10, 100.0)
    assert cfg.chunks_total == 100
    assert cfg.ideal_runtime_s == pytest.approx(34.0)
    assert cfg.run_id


@pytest.mark.parametrize("scale,params,chunk,ms", [
    ("small", 1_000, 10, 100.0), ("medium", 10_000, 100, 10.0), ("large", 1_000_000, 1_000, 0.0)])
def test_scale_presets(scale, params, chunk, ms):
    cfg = RunConfig.build(scale=scale)
    assert (cfg.total_params, cfg.chunk_size, cfg.work_ms) == (params, chunk, ms)


def test_overrides_win_over_preset_and_strings_are_coerced():
    cfg = RunConfig.build(scale="medium", total_params="2_000", chunk_size="50", work_ms="0",
                          fault_demo="true")
    assert (cfg.total_params, cfg.chunk_size, cfg.work_ms, cfg.fault_demo) == (2000, 50, 0.0, True)


def test_env_urls(monkeypatch):
    monkeypatch.setenv("TTG_REDIS_URL", "redis://example:1234/2")
    monkeypatch.setenv("TTG_RABBITMQ_URL", "amqp://u:secret@example:5673/%2F")
    cfg = RunConfig.build()
    assert cfg.broker_url == "redis://example:1234/2"
    assert RunConfig.build(backend="rabbitmq").broker_url == "amqp://u:secret@example:5673/%2F"
    assert "secret" not in json.dumps(cfg.to_dict())


def test_a_billion_points_is_a_valid_run():
    """The 10^9-point run (benchmarks/scale.py --total 1000000000) was refused at 10^8."""
    assert RunConfig.build(scale="large", total_params=10**9, chunk_size=10_000).chunks_total \
        == 100_000


@pytest.mark.parametrize("field,value,allowed", [
    ("backend", "kafka", "one of redis, rabbitmq"),
    ("scale", "huge", "one of tiny, small, medium, large"),
    ("cluster", "swarm", "one of local, kind, k8s"),
    ("workers", 0, "or 0 with expect_workers N"),
    ("workers", 300, "a whole number from 0 to 256"),
    ("workers", 2.5, "a whole number"),
    ("workers", "three", "a whole number"),
    ("total_params", -5, "a whole number from 1"),
    ("total_params", 10**9 + 1, "a whole number from 1 to 1,000,000,000"),
    ("chunk_size", 0, "a whole number from 1"),
    ("work_ms", -1, "a number from 0"),
    ("work_ms", float("nan"), "a number from 0"),
    ("kill_at", 1.5, "strictly between 0 and 1"),
    ("kill_at", 0, "strictly between 0 and 1"),
    ("restart", "sometimes", "one of always, never"),
    ("monitor", "gui", "one of cli, none"),
    ("run_id", "bad id!", "letters, digits"),
    ("compute", "no_colon", "import path"),
    ("broker_url", "http://x", "scheme redis or rediss"),
    ("fault_demo", "maybe", "true or false"),
    ("colour", "blue", "unknown setting"),
    ("chunks_per_task", -1, "a whole number from 0 to 1,000"),
])
def test_every_bad_value_names_the_field_and_what_is_allowed(field, value, allowed):
    with pytest.raises(ConfigError) as err:
        RunConfig.build(**{field: value})
    assert err.value.field == field
    assert allowed in str(err.value)
    assert str(err.value).startswith(f"invalid {field}=")


def test_broker_url_is_checked_against_the_backend_and_old_names_still_work():
    with pytest.raises(ConfigError, match="RabbitMQ URL with scheme amqp or amqps"):
        RunConfig.build(backend="rabbitmq", broker_url="redis://x")
    with pytest.raises(ConfigError, match="port must be a number"):
        RunConfig.build(backend="rabbitmq", broker_url="amqp://host:notaport/")
    assert RunConfig.build(backend="rabbitmq", rabbitmq_url="amqp://h:1/v",
                           redis_url="redis://ignored").broker_url == "amqp://h:1/v"


@pytest.mark.parametrize("settings,bundle", [
    ({"total_params": 100_000, "chunk_size": 10}, 16),  # 10,000 chunks: 16 a message
    ({"total_params": 1_000_000, "chunk_size": 1_000}, 2),  # 1,000 chunks, 3 workers
    ({"total_params": 1_000, "chunk_size": 10}, 1),  # 100 chunks: one a message
    ({"total_params": 100_000, "chunk_size": 10, "workers": 0, "expect_workers": 40}, 1),
    ({"total_params": 1_000, "chunk_size": 10, "chunks_per_task": 5}, 5),  # as asked
])
def test_chunks_travel_in_bundles_only_while_every_worker_gets_many_messages(settings, bundle):
    assert RunConfig.build(**settings).task_bundle == bundle


def test_chunk_larger_than_params_and_fault_with_one_worker():
    with pytest.raises(ConfigError, match="chunk_size.*must not exceed total_params"):
        RunConfig.build(total_params=10, chunk_size=20)
    with pytest.raises(ConfigError, match="needs at least 2"):
        RunConfig.build(workers=1, fault_demo=True)


def test_config_file(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"backend": "rabbitmq", "workers": 5}))
    assert RunConfig.from_file(good, workers=4).workers == 4
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_file(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        RunConfig.from_file(tmp_path / "missing.json")
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        RunConfig.from_file(listing)


@pytest.mark.parametrize("args,needle", [
    (["--workers", "0"], "invalid workers=0"),
    (["--backend", "kafka"], "'kafka' is not one of"),
    (["--kill-at", "2", "--fault-demo"], "invalid kill_at=2.0"),
    (["--compute", "nosuchmodule:fn"], "module 'nosuchmodule' does not import"),
    (["--compute", "ttg_lib.compute:nothing"], "has no callable 'nothing'"),
    (["--total-params", "abc"], "'abc' is not a valid integer"),
    (["--config", "/nonexistent.json"], "file does not exist"),
])
def test_cli_bad_input_is_one_clear_error_and_starts_nothing(tmp_path, args, needle):
    out = tmp_path / "outputs"
    proc = ttg_in_process("run", "--output-dir", str(out), *args)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())
