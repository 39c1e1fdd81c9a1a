"""The `ttg` subcommands, one module per command group; :mod:`ttg_lib.cli` assembles them.

Each module imports what its command needs only when the command runs, so a worker or a
Kubernetes probe (``python -m ttg_lib.worker``, ``python -m ttg_lib.health``) pays for
click and its own code, not for rich, the run driver or the notebooks.

* :mod:`.base`: the error policy every command shares (a TTGError is one line, exit 2);
* :mod:`.run`: ``ttg run`` and the milestone table it prints;
* :mod:`.worker`: ``ttg worker`` (``python -m ttg_lib.worker``);
* :mod:`.health`: ``ttg health`` (``python -m ttg_lib.health``, the Kubernetes probes);
* :mod:`.kind`: ``ttg kind`` (``python -m ttg_lib.cluster.kind``);
* :mod:`.monitor`, :mod:`.cleanup`, :mod:`.runs`, :mod:`.report`: the other commands.
"""
