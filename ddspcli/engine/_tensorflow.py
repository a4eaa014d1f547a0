"""TensorFlow for the engine modules, imported once with its start-up chatter filtered.

Engine modules write ``from ddspcli.engine._tensorflow import tf`` rather than ``import
tensorflow as tf``, so that the first of them to load imports TensorFlow through
`ddspcli.tfimport.import_quietly`. Modules that need no TensorFlow (`audio`; `analysis` until
it measures loudness) stay light, so `ddsp info` refuses a bad file in a fraction of a second.
"""

from ddspcli import tfimport

tfimport.import_quietly()

import tensorflow as tf  # noqa: E402  (after the quiet import, which does the work)

__all__ = ["tf"]
