"""The official DDSP library's ``dataset_statistics.pkl``, read without running its code.

The training notebook of magenta/ddsp pickles a dict of numpy float scalars
(``{mean,max,min,mean_max,mean_min,std}_{pitch,power,loudness}[_note]``, pitch in MIDI,
power and loudness in dB) and a ``quantile_transform``: ddsp's own copy of sklearn's
``QuantileTransformer`` (older releases: sklearn's), holding float64 ``quantiles_``
``[n, 1]`` and ``references_`` ``[n]`` and a numpy ``RandomState``. Unpickling normally runs
whatever callables the file names, so `SafeUnpickler` resolves only an allow-list: numpy's
array, scalar and dtype constructors (both the numpy 1.x ``numpy.core`` and the numpy 2.x
``numpy._core`` spellings), the quantile transformer (rebuilt as a plain attribute holder,
not as ddsp's or sklearn's class), and the random-state constructors (replaced by an inert
stand-in: nothing here needs the state). Any other global is refused.

`to_statistics` maps the result onto ``statistics.json`` as `data.compute_statistics` writes
it, for the automatic adjustments of `transfer`.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from ddspcli.errors import ModelError

QUANTILE_TRANSFORMERS = {
    ("ddsp.training.postprocessing", "QuantileTransformer"),
    ("sklearn.preprocessing._data", "QuantileTransformer"),
    ("sklearn.preprocessing.data", "QuantileTransformer"),  # scikit-learn < 0.22
}
RANDOM_STATE_GLOBALS = {
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random", "__RandomState_ctor"),  # numpy < 1.17
    ("numpy.random.mtrand", "RandomState"),
    ("numpy.random._mt19937", "MT19937"),
    ("numpy.random.bit_generator", "SeedSequence"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
}
NUMPY_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "dtype"), ("numpy", "ndarray")}
# Protocol-2 pickles store bytes as _codecs.encode(text, "latin1"): a pure function.
CODEC_GLOBALS = {("_codecs", "encode")}


class QuantileTransformerState:
    """The attributes of a pickled quantile transformer (``quantiles_``, ``references_``, ...),
    with none of its behaviour."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state if isinstance(state, dict) else {})


class _Inert:
    """Stands for the random-state objects: accepts any arguments and any state, holds none."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> _Inert:
        return _Inert()

    def __setstate__(self, state: object) -> None:
        pass


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only `NUMPY_GLOBALS`, the quantile transformers and the
    random-state globals; anything else raises `pickle.UnpicklingError` naming it."""

    def find_class(self, module: str, name: str) -> object:
        key = (module, name)
        if key in NUMPY_GLOBALS:
            return _numpy_global(module, name)
        if key in CODEC_GLOBALS:
            import codecs

            return codecs.encode
        if key in QUANTILE_TRANSFORMERS:
            return QuantileTransformerState
        if key in RANDOM_STATE_GLOBALS:
            return _Inert
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed")


def _numpy_global(module: str, name: str) -> object:
    if module == "numpy":
        return getattr(np, name)
    from numpy import _core  # numpy >= 2; the 1.x names are its aliases

    return getattr(_core.multiarray, name)


def load(path: str | Path) -> dict:
    """The dict stored in a ``dataset_statistics.pkl``, loaded with `SafeUnpickler`.

    Raises:
        ModelError: a global outside the allow-list (named), or a file that is not such a
            pickle.
    """
    data = Path(path).read_bytes()
    try:
        loaded = SafeUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as err:
        if "is not allowed" in str(err):
            raise ModelError(
                f"{path}: refused to unpickle it: it names {str(err).split(' is ')[0]}, which a "
                "statistics file never holds (only numpy arrays and a quantile transformer)"
            ) from None
        raise ModelError(f"{path} is not a readable statistics pickle ({err})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise ModelError(f"{path} is not a readable statistics pickle ({err})") from None
    if not isinstance(loaded, dict):
        raise ModelError(f"{path} holds a {type(loaded).__name__}, not the statistics dict")
    return loaded


def to_statistics(raw: dict, n_quantiles: int = 101) -> dict:
    """ddspcli's ``statistics.json`` from the official statistics dict.

    ``mean_pitch`` is the note-on mean pitch (MIDI), ``pitch_range`` the mean per-example
    note-on minimum and maximum (the official file has no percentiles), ``f0_hz_range`` their
    frequencies, ``note_on_loudness`` the note-on loudness mean/std/min/max (dB), and
    ``loudness_quantiles`` `n_quantiles` values of the quantile transformer (fitted by the
    official library on note-on loudness) at evenly spaced probabilities.

    Raises:
        ModelError: a key the adjustments need is missing.
    """
    try:
        values = {k: float(raw[k]) for k in (
            "mean_pitch_note", "mean_min_pitch_note", "mean_max_pitch_note",
            "mean_loudness_note", "std_loudness_note", "min_loudness_note", "max_loudness_note",
        )}  # fmt: skip
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"the statistics lack {err}; re-export them with the notebook") from None
    low, high = values["mean_min_pitch_note"], values["mean_max_pitch_note"]
    stats = {
        "source": "ddsp dataset_statistics.pkl",
        "mean_pitch": values["mean_pitch_note"],
        "pitch_range": [low, high],
        "f0_hz_range": [float(440.0 * 2 ** ((m - 69.0) / 12.0)) for m in (low, high)],
        "note_on_loudness": {
            key: values[f"{key}_loudness_note"] for key in ("mean", "std", "min", "max")
        },
    }
    transformer = raw.get("quantile_transform")
    quantiles = getattr(transformer, "quantiles_", None)
    references = getattr(transformer, "references_", None)
    if quantiles is not None and references is not None:
        q = np.asarray(quantiles, np.float64).reshape(len(references), -1)[:, 0]
        probabilities = np.linspace(0.0, 1.0, n_quantiles)
        stats["loudness_quantiles"] = np.interp(probabilities, np.asarray(references), q).tolist()
    return stats
