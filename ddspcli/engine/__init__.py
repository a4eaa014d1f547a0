"""The one engine every `ddsp` subcommand shares (see DESIGN.md for the layering).

Most modules here import TensorFlow, through `ddspcli.engine._tensorflow` (which filters its
native import chatter); the CLI imports them lazily so that ``ddsp --help`` stays fast.
`audio` needs no TensorFlow, so ``ddsp info`` decodes (and refuses) its inputs before it loads.
"""
