"""``python -m ttg_lib.worker``: the worker's command line (:mod:`ttg_lib.commands.worker`),
in a module of its own so that the worker's logic never imports the CLI layer."""

from ttg_lib.commands.worker import worker

worker.main(prog_name="python -m ttg_lib.worker")
