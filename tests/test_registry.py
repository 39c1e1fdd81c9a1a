"""The broker registry: which brokers worker processes can share is known without importing
any broker's client library (the `ttg` command line and every worker start-up would pay for
all of them), and that list agrees with the specs themselves."""

from __future__ import annotations

import subprocess
import sys

from ttg_lib.backends.registry import IN_PROCESS, MODULES, REGISTRY, backend_names


def test_the_in_process_list_agrees_with_the_specs():
    assert {name for name in MODULES if not REGISTRY[name].shared} == IN_PROCESS
    assert backend_names(runnable=True) == tuple(n for n in MODULES if REGISTRY[n].shared)


def test_the_command_line_lists_brokers_without_loading_their_clients():
    code = ("import sys, ttg_lib.cli, ttg_lib.commands.worker; from ttg_lib.config import "
            "BACKENDS; print(BACKENDS, 'redis' in sys.modules, 'pika' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.split() == ["('redis',", "'rabbitmq')", "False", "False"]
