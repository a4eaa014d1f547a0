#!/bin/bash
# How the shipped instrument models are built: `ddsp prepare` + `ddsp fit`, nothing else.
#
#   recipes/shipped_models.sh prepare        # all datasets (CREPE full; ~1 audio min per min)
#   recipes/shipped_models.sh fit violin     # train (or resume) one model in the background
#   recipes/shipped_models.sh export violin [RUN]   # inference-only copy into the package +
#                                                   # its manifest entry (sha256, size, licence)
#
# Every step is resumable: rerun the same command after an interruption or in a new session.
# DATA points at the openly licensed recordings (see ../shared/data/SOURCES.md); WORK holds the
# prepared datasets and run folders (both ignored by git). Run from the repository root.
set -euo pipefail
DATA=${DATA:-../shared/data}
WORK=${WORK:-.}
DDSP=${DDSP:-.venv/bin/ddsp}
SF=$DATA/soundfont_renders

prepare() {
  $DDSP prepare "$DATA/bach_violin_ccby/audio" -o "$WORK/data/violin"
  for inst in flute trumpet cello; do
    $DDSP prepare "$SF/musescore_general/${inst}_bwv1002_mov6.flac" \
      "$SF/musescore_general/${inst}_bwv1002_mov8.flac" \
      "$SF/fluidr3_gm/${inst}_bwv1002_mov8_first40s.flac" -o "$WORK/data/${inst}-sf"
  done
  # The MTG notes are trimmed to their onsets: join them into takes with silent gaps so that
  # the model sees onsets from silence (see recipes/join_notes.py).
  "$(dirname "$DDSP")/python" recipes/join_notes.py "$DATA/mtg_tenor_sax_notes/audio" \
    "$WORK/audio/tenor_sax_joined"
  $DDSP prepare "$WORK"/audio/tenor_sax_joined/take-*.wav "$DATA/medley_solos_db_small/tenor_saxophone" \
    -o "$WORK/data/tenor_sax"
}

fit() {  # fit NAME [extra ddsp fit options]: tiny variant, batch 8, lr 1e-3 (CPU budget)
  local name=$1
  shift
  mkdir -p "$WORK/runs"
  nohup nice -n 10 $DDSP fit "$WORK/data/$name" --variant tiny -o "$WORK/runs/$name-tiny" \
    --steps 20000 --batch-size 8 --learning-rate 1e-3 --checkpoint-every 250 \
    --summary-every 50 --json-log "$@" >> "$WORK/runs/$name-tiny.jsonl" \
    2>> "$WORK/runs/$name-tiny.err" &
  echo "training $name in the background (pid $!); log: $WORK/runs/$name-tiny.jsonl"
}

# Description, licence and attribution of each shipped model (from ../shared/data/SOURCES.md).
# The three soundfont renders share their source and licence.
SF_DESC="sample-playback render (soundfonts, not a real recording): Bach BWV 1002 (4.8 min)"
SF_ATTR="Rendered with fluidsynth from the MuseScore_General (musescore-general-soundfont 0.2.1, MIT) and FluidR3_GM (fluid-soundfont-gm 3.1, MIT) soundfonts; public-domain score of J.S. Bach BWV 1002, note lists from the Bach Violin Dataset (H.-W. Dong et al., ICASSP 2022)"
declare -A DESC=(
  [violin]="Solo violin: Bach Partita 1 and Sonata 2, real recordings (9.9 min)"
  [tenor_sax]="Tenor saxophone: MTG sustained notes and Medley-solos-DB excerpts, real recordings (5.0 min)"
  [flute-sf]="Flute, $SF_DESC"
  [trumpet-sf]="Trumpet, $SF_DESC"
  [cello-sf]="Cello, $SF_DESC"
)
declare -A LIC=(
  [violin]="CC BY 3.0"
  [tenor_sax]="CC BY 4.0"
  [flute-sf]="MIT"
  [trumpet-sf]="MIT"
  [cello-sf]="MIT"
)
declare -A ATTR=(
  [violin]="J.S. Bach, performed by John Garner / MinJi Kim, CC BY 3.0, via the Bach Violin Dataset (H.-W. Dong et al., ICASSP 2022)"
  [tenor_sax]="MTG (Music Technology Group, UPF) sax samples, SFZ programming by kinwie (MTG.SoloSax), CC BY 4.0; Medley-solos-DB v1.2 (V. Lostanlen, C.-E. Cella, R. Bittner, S. Essid), CC BY 4.0"
  [flute-sf]="$SF_ATTR"
  [trumpet-sf]="$SF_ATTR"
  [cello-sf]="$SF_ATTR"
)

export_model() {  # export NAME [RUN]: into ddspcli/models/NAME, entry replaced in the manifest
  local name=$1 run=${2:-$WORK/runs/$1-tiny}
  $DDSP models export "$run" -o "ddspcli/models/$name" --force --name "$name" \
    --description "${DESC[$name]}" --license "${LIC[$name]}" --attribution "${ATTR[$name]}" \
    --manifest-source "bundled:models/$name" > "ddspcli/models/.$name.toml"
  python3 - "$name" <<'PY'
import re, sys
name = sys.argv[1]
path = "ddspcli/pretrained_manifest.toml"
text = open(path).read()
entry = open(f"ddspcli/models/.{name}.toml").read()
# Drop the old [models.NAME] table and its sub-tables, then append the new entry.
pattern = re.compile(rf"\n\[+models\.{re.escape(name)}[.\]][\s\S]*?(?=\n\[+models\.(?!{re.escape(name)}[.\]])|\Z)")
text = pattern.sub("", text).rstrip("\n") + "\n\n" + entry
open(path, "w").write(text)
PY
  rm "ddspcli/models/.$name.toml"
  echo "exported $run to ddspcli/models/$name; manifest entry updated"
}

case "${1:-}" in
  prepare) prepare ;;
  fit) shift; fit "$@" ;;
  export) shift; export_model "$@" ;;
  *) echo "usage: $0 prepare | fit NAME [ddsp fit options] | export NAME [RUN]" >&2; exit 2 ;;
esac
