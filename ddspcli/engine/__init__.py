"""The one engine every `ddsp` subcommand shares (see DESIGN.md for the layering).

Importing a module here imports TensorFlow; the CLI imports them lazily so that
``ddsp --help`` stays fast. TensorFlow is imported here first, before any engine
module, with its native import chatter filtered (see ``ui.import_tensorflow_quietly``).
"""

from ddspcli import ui

ui.import_tensorflow_quietly()
