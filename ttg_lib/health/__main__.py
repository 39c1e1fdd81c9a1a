"""``python -m ttg_lib.health``: the probe's command line (:mod:`ttg_lib.commands.health`),
in a module of its own so that the probe's logic never imports the CLI layer."""

from ttg_lib.commands.health import health

health.main(prog_name="python -m ttg_lib.health")
