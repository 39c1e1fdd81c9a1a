"""Private brokers: a broker process started for one run when nothing answers on loopback.

A private broker runs from the binary on PATH, on a free loopback port with a temporary
data directory, in its own session (so stopping it reaches its whole process group and
nothing else), and is stopped, its directory removed, when the run ends. TTG never starts
anything on a port it did not pick, and never touches a broker it did not start. The
registry names each broker's starter (``BackendSpec.private_broker``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

from ..errors import ClusterError
from .registry import REGISTRY


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str, timeout: float = 1.5) -> bool:
    """True when something accepts TCP connections at the URL's host and port."""
    parsed = urlparse(url)
    default = next((s.default_port for s in REGISTRY.values()
                    if parsed.scheme in s.url_schemes), 0)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default),
                                      timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class PrivateBroker:
    kind: str
    url: str
    process: subprocess.Popen
    data_dir: str
    extra_env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def restart(self, down_s: float = 0.0, timeout: float = 90.0) -> None:
        """Stop gracefully, stay down ``down_s``, start again on the same port and data."""
        self._terminate(20.0)
        self._wait_released(20.0)
        time.sleep(down_s)  # the outage itself is what is being simulated
        deadline = time.monotonic() + timeout
        while True:
            self.process = _launch(self.args, self.extra_env, self.data_dir)
            if _started(self, deadline):
                return
            # Exited at start-up: RabbitMQ's old node name can stay registered with epmd a
            # moment after its ports close ("node already running"). Try again; the data
            # directory is the run's, so it is kept, never removed, on this path.
            if time.monotonic() > deadline:
                raise ClusterError(f"private {self.kind} did not come back within "
                                   f"{timeout:.0f}s of a restart; see {self.data_dir}")
            time.sleep(0.5)  # epmd drops a dead node's name on its own schedule

    def stop(self, timeout: float = 20.0) -> None:
        self._terminate(timeout)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _wait_released(self, timeout: float) -> None:
        """The old server may outlive its launcher by a moment (RabbitMQ's Erlang VM): until
        its ports close, a new one on the same name and ports would refuse to start."""
        ports = [urlparse(self.url).port, self.extra_env.get("RABBITMQ_DIST_PORT")]
        deadline = time.monotonic() + timeout
        for port in (int(p) for p in ports if p):
            while answers(f"tcp://127.0.0.1:{port}", timeout=0.2):
                if time.monotonic() > deadline:
                    raise ClusterError(f"private {self.kind} still listens on port {port} "
                                       f"{timeout:.0f} s after it was stopped")
                time.sleep(0.05)  # a closing port has no notification

    def _terminate(self, timeout: float) -> None:
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    @property
    def node(self) -> str:
        """The Erlang node name of a private RabbitMQ ("" for Redis)."""
        return self.extra_env.get("RABBITMQ_NODENAME", "")

    def rabbitmqctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run rabbitmqctl against this private RabbitMQ node (e.g. stop_app, list_queues):
        the real script, as Debian's wrapper switches to another user's Erlang cookie."""
        ctl = DEBIAN_RABBITMQCTL if os.path.exists(DEBIAN_RABBITMQCTL) else _binary(
            "rabbitmq", "rabbitmqctl", "apt-get install rabbitmq-server")
        proc = subprocess.run([ctl, "-n", self.node, *args], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **self.extra_env})
        if proc.returncode != 0:
            raise ClusterError(f"rabbitmqctl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def stop_app_for(self, seconds: float) -> None:
        """A RabbitMQ outage that keeps the node: the app stopped, ``seconds`` later started
        again, in one ``rabbitmqctl eval`` (what ``stop_app`` and ``start_app`` do), so the
        outage is ``seconds`` plus the app's own start-up, not also a second CLI's (~0.6 s
        of Erlang boot between two commands)."""
        millis = max(0, round(seconds * 1000))
        self.rabbitmqctl("eval", f"rabbit:stop(), timer:sleep({millis}), rabbit:start().",
                         timeout=60.0 + seconds)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "pid": self.pid, "data_dir": self.data_dir}


class RefusalWatch(threading.Thread):
    """How long a broker refused connections during a fault: its port polled every 20 ms
    (the outage a run saw, which includes the broker's own start-up)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.down_s = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        down_since = None
        while not self._halt.wait(0.02):
            up = answers(self.url, timeout=0.2)
            if not up and down_since is None:
                down_since = time.monotonic()
            elif up and down_since is not None:
                self.down_s += time.monotonic() - down_since
                down_since = None

    def stop(self) -> None:
        self._halt.set()
        if self.ident:
            self.join(5)


def _binary(kind: str, name: str, install: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if os.path.exists(p)), None)
    if path is None:
        raise ClusterError(f"no {kind} broker is running and {name} is not installed; "
                           f"install it with: {install}")
    return path


def _started(broker: PrivateBroker, deadline: float) -> bool:
    """True once the broker's port answers, False if its process exited first."""
    while time.monotonic() < deadline:
        if broker.process.poll() is not None:
            return False
        if answers(broker.url, timeout=0.5):
            return True
        time.sleep(0.1)  # polling a port that has nobody to notify us
    broker.stop()
    raise ClusterError(f"private {broker.kind} did not open its port in time; "
                       f"see {broker.data_dir}")


def _wait_for_port(broker: PrivateBroker, timeout: float, log_hint: str) -> PrivateBroker:
    if not _started(broker, time.monotonic() + timeout):
        code = broker.process.returncode
        broker.stop()
        raise ClusterError(f"private {broker.kind} exited with code {code} at start-up; "
                           f"see {log_hint}")
    return broker


def start_redis(aof: bool = False) -> PrivateBroker:
    """Redis with AOF on when ``aof``: a restart mid-run keeps the run's data."""
    binary = _binary("redis", "redis-server",
                     "apt-get install redis-server (Debian/Ubuntu), brew install redis (macOS) "
                     "or conda install -c conda-forge redis-server")
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="ttg-redis-")
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", data_dir,
            "--save", "", "--appendonly", "yes" if aof else "no",
            "--logfile", os.path.join(data_dir, "redis.log")]
    broker = PrivateBroker("redis", f"redis://127.0.0.1:{port}/0", _launch(args, {}, data_dir),
                           data_dir, args=args)
    return _wait_for_port(broker, 15, os.path.join(data_dir, "redis.log"))


DEBIAN_RABBITMQ = "/usr/lib/rabbitmq/bin/rabbitmq-server"
DEBIAN_RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


def start_rabbitmq(aof: bool = False, plugins: tuple[str, ...] = (),
                   config: str = "") -> PrivateBroker:
    """RabbitMQ keeps durable queues and persistent messages across a restart anyway (``aof``
    changes nothing). ``plugins``: enabled at boot (e.g. rabbitmq_management); ``config``:
    rabbitmq.conf lines (e.g. ``management.tcp.port = 15673``)."""
    # Debian's /usr/sbin wrapper switches to the rabbitmq user and drops our data dir;
    # the real script beside it runs as us.
    binary = DEBIAN_RABBITMQ if os.path.exists(DEBIAN_RABBITMQ) else _binary(
        "rabbitmq", "rabbitmq-server",
        "apt-get install rabbitmq-server (Debian/Ubuntu) or brew install rabbitmq (macOS)")
    port, dist_port = free_port(), free_port()
    data_dir = tempfile.mkdtemp(prefix="ttg-rabbitmq-")
    node = f"ttg-{port}@localhost"
    plugins_file = os.path.join(data_dir, "enabled_plugins")
    with open(plugins_file, "w") as fh:
        fh.write(f"[{','.join(plugins)}].\n")
    with open(os.path.join(data_dir, "rabbitmq.conf"), "w") as fh:
        fh.write(config)
    env = {
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": os.path.join(data_dir, "mnesia"),
        "RABBITMQ_LOG_BASE": os.path.join(data_dir, "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": plugins_file,
        "RABBITMQ_CONFIG_FILE": os.path.join(data_dir, "rabbitmq"),
        "RABBITMQ_PID_FILE": os.path.join(data_dir, "rabbitmq.pid"),
        "ERL_CRASH_DUMP": os.path.join(data_dir, "erl_crash.dump"),  # not in the caller's cwd
    }
    broker = PrivateBroker("rabbitmq", f"amqp://guest:guest@127.0.0.1:{port}/%2F",
                           _launch([binary], env, data_dir), data_dir, env, [binary])
    return _wait_for_port(broker, 90, env["RABBITMQ_LOG_BASE"])


def _launch(args: list[str], env: dict[str, str], data_dir: str) -> subprocess.Popen:
    """Own session, so stopping the broker reaches its whole process group and nothing else.
    What the launcher prints (a start-up refusal, say) goes to ``launcher.log`` beside the
    data, so an exit at start-up can be read afterwards."""
    with open(os.path.join(data_dir, "launcher.log"), "ab") as log:
        return subprocess.Popen(args, env={**os.environ, **env}, stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _signal_group(pid: int, sig: int) -> None:
    """The broker runs in its own session (we started it so): its group is all ours."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
