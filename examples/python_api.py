"""The README's "Python API" example: a speech clip played by the violin, with its stems.

Run from the repository root: python examples/python_api.py [OUT_DIR]
"""

import sys
from pathlib import Path

import soundfile as sf

from ddspcli.instrument import Instrument

out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "api-out")
out_dir.mkdir(exist_ok=True)

violin = Instrument.open("violin")  # a name from `ddsp models list`, or a model folder
speech, rate = sf.read("examples/speech_198-209-0000.wav", dtype="float32")

features = violin.features(speech, rate)  # f0_hz, f0_confidence, loudness_db [frames]
adjusted, report = violin.adjust(features, octaves=1)  # as `ddsp transfer --octave 1`
parts = violin.render(adjusted, stems=True)  # audio, harmonic, noise [samples]

for name, audio in parts.items():
    sf.write(out_dir / f"speech.violin.{name}.wav", audio, violin.sample_rate)
print(f"{len(features['f0_hz'])} frames, shift {report['semitones']:+g} semitones, "
      f"parts {sorted(parts)} in {out_dir}")
