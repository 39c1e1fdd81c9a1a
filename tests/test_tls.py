"""TLS to a broker of your own: a private Redis with TLS only and a password, its certificate
signed by a CA made here; TTG connects with rediss:// and TTG_TLS_CA, and refuses without it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ttg_lib.backends import BrokerUnavailable, open_consumer, open_producer
from ttg_lib.backends.tls import TLS_CA_ENV

pytestmark = pytest.mark.slow


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tls_redis(tmp_path: Path):
    if not shutil.which("openssl") or not shutil.which("redis-server"):
        pytest.fail("openssl and redis-server are needed", pytrace=False)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=ttg-test-ca", cwd=tmp_path)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=127.0.0.1", cwd=tmp_path)
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext",
             cwd=tmp_path)
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", "server.pem", "--tls-key-file", "server.key",
         "--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no", "--requirepass", "s3cret",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)  # a process starting: no readiness event to wait on
    yield f"rediss://:s3cret@127.0.0.1:{port}/0", tmp_path / "ca.pem"
    proc.terminate()
    proc.wait(10)


def test_rediss_with_the_ca_file_connects_and_carries_a_run(tls_redis, monkeypatch):
    url, ca = tls_redis
    monkeypatch.setenv(TLS_CA_ENV, str(ca))
    producer, consumer = open_producer("redis", url), open_consumer("redis", url)
    producer.connect()
    consumer.connect()
    try:
        producer.declare()
        producer.put_blob("k", b"fn")
        assert consumer.get_blob("k") == b"fn"  # a worker on TLS reads the run's function
    finally:
        producer.purge()
        producer.close()
        consumer.close()


def test_rediss_without_the_ca_is_refused(tls_redis, monkeypatch):
    url, _ca = tls_redis
    monkeypatch.delenv(TLS_CA_ENV, raising=False)
    with pytest.raises(BrokerUnavailable, match="unavailable"):
        open_producer("redis", url).connect()
