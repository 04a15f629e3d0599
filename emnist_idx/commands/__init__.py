"""The ``emnist-idx`` subcommands, one module each.

Every module has ``NAME``, ``add_parser(subparsers)`` and ``run(args) -> int`` (the exit code);
a command whose parser sets ``passes_through=True`` gets the arguments it does not declare as
``args.passed_through`` (``build`` hands them to ``tfds build``);
``emnist_idx.commands.cli`` wires them together and turns our errors into ``emnist-idx: error: ...`` lines.
"""
