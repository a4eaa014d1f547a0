#!/bin/bash
# Issue 9's comparison: the four variants trained with the same budget on the violin data, then
# scored with `ddsp eval` on the same eval split. All four use the tiny network (GRU 256 on the
# raw inputs) so that they differ only in the synthesis graph (and the z encoder):
#   harmonic               60 harmonics
#   harmonic+noise         + 65-band filtered noise
#   harmonic+noise+reverb  + trainable 3 s reverb   (= the `tiny` variant)
#   +z                     + MFCC -> GRU -> z (16) encoder
# and, for issue 8's size question, harmonic+noise+reverb with a GRU of 128 (`gru128`) beside
# the 256 of `harmonic+noise+reverb`.
#
#   WORK=/work/train benchmarks/variant_comparison.sh [STEPS]   # resumable; rerun to continue
#
# On a machine with spare cores, train in parallel queues and score once all are done:
#   VARIANTS="harmonic harmonic+noise+reverb gru128" EVAL=0 benchmarks/variant_comparison.sh &
#   VARIANTS="harmonic+noise z" EVAL=0 benchmarks/variant_comparison.sh &
#   wait; VARIANTS="" benchmarks/variant_comparison.sh
#
# Writes $WORK/compare/<variant>/ (run folders), $WORK/compare/eval.json and eval.png; the table goes in
# BENCHMARKS.md ("Variant comparison").
set -euo pipefail
WORK=${WORK:-.}
DDSP=${DDSP:-.venv/bin/ddsp}
STEPS=${1:-1500}
DATA=$WORK/data/violin
OUT=$WORK/compare
mkdir -p "$OUT"
common=(--variant tiny --steps "$STEPS" --batch-size 8 --learning-rate 1e-3
        --checkpoint-every 250 --summary-every 50 --json-log)
declare -A EXTRA=(
  [harmonic]="--gin-param Autoencoder.n_noise_bands=0 --gin-param Autoencoder.reverb_length=0"
  [harmonic+noise]="--gin-param Autoencoder.reverb_length=0"
  [harmonic+noise+reverb]=""
  [z]="--z"
  [gru128]="--gin-param Autoencoder.rnn_units=128"
)
ALL="harmonic harmonic+noise harmonic+noise+reverb z gru128"
VARIANTS=${VARIANTS-$ALL}
for v in $VARIANTS; do
  # shellcheck disable=SC2086
  $DDSP fit "$DATA" -o "$OUT/$v" "${common[@]}" ${EXTRA[$v]} >> "$OUT/$v.jsonl" 2>> "$OUT/$v.err"
done
[ "${EVAL:-1}" = 1 ] || exit 0
# One pass: JSON on stdout (the table in BENCHMARKS.md is made from it) and the plot.
runs=()
for v in $ALL; do runs+=("$OUT/$v"); done
$DDSP eval "${runs[@]}" --data "$DATA" --json --plot "$OUT/eval.png" --force > "$OUT/eval.json.tmp"
mv "$OUT/eval.json.tmp" "$OUT/eval.json"
echo "done: $OUT/eval.json"
