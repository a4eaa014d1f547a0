"""The one engine every `ddsp` subcommand shares (see DESIGN.md for the layering).

Importing a module here imports TensorFlow; the CLI imports them lazily so that
``ddsp --help`` stays fast.
"""
