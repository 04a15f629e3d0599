"""The ``emnist-idx`` subcommands, one module each.

Every module has ``NAME``, ``add_parser(subparsers)`` and ``run(args) -> int`` (the exit code);
``emnist_idx.commands.cli`` wires them together and turns our errors into ``emnist-idx: error: ...`` lines.
"""
