"""``python -m ttg_lib.cluster.kind``: kind provisioning's command line
(:mod:`ttg_lib.commands.kind`), in a module of its own so that provisioning never imports the
CLI layer."""

from ttg_lib.commands.kind import kind

kind.main(prog_name="python -m ttg_lib.cluster.kind")
