"""`ddsp studio`: a local web page (Gradio) to try, compare and keep transfers.

The page drives `ddspcli.instrument.Instrument` through `engine.transfer.run_job`, the very
function ``ddsp transfer`` runs: the same features, adjustments, peak-safe gain, resampling
and 16-bit WAV, so a take rendered here equals the command line's with the same settings.
No TensorFlow is imported (`make lint` checks it).

Safety (README, "Studio"):
- everything the server writes lives in one temporary folder (`Studio.root`, Gradio's upload
  cache included): a folder per browser session, removed when its tab closes, and the whole
  folder removed when the server stops; a bad upload is deleted at once;
- uploads are bounded (`MAX_UPLOAD_MB`, `MAX_SECONDS`); a file beyond them, an empty file, a
  file that is not audio, or a folder that is not a model gives one message in the page and
  the server goes on serving;
- jobs run one at a time (one queue for every session, each instrument also locked: the
  runtime's decoder state belongs to one render), each session sees only its own files;
- nothing leaves the machine: Gradio's analytics are off, its fonts and scripts are served
  from the package, no share link.
"""

import contextlib
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ddspcli import choices, pretrained
from ddspcli.engine import adjust as adjust_lib
from ddspcli.engine import audio as audio_io
from ddspcli.engine import features_io, transfer
from ddspcli.errors import DdspError, InputError, ModelError
from ddspcli.instrument import MODEL_JSON, Instrument

MAX_UPLOAD_MB = 50  # per uploaded file (Gradio refuses larger uploads before they land)
MAX_SECONDS = 300.0  # per input: 5 minutes
NO_MODEL = "(none)"
PITCH_MODELS = tuple(m.value for m in choices.PitchModel)
# The room choices of the page: `--room` left out, `--room none`, `--room MODEL`, `--room IR.wav`.
ROOM_OWN, ROOM_DRY, ROOM_MODEL, ROOM_FILE = ("the model's own", "none (dry)", "another model's",
                                             "an impulse response")  # fmt: skip
ROOM_KINDS = (ROOM_OWN, ROOM_DRY, ROOM_MODEL, ROOM_FILE)

__all__ = ["MAX_SECONDS", "MAX_UPLOAD_MB", "Studio", "build", "model_choices"]


# ---------------------------------------------------------------------------------------------
# Models: the manifest's instruments, and folders by path.


def model_choices() -> dict[str, pretrained.ModelSpec]:
    """Every playable model `ddsp models list` knows (instruments and the DDSP-VST file)."""
    return {n: s for n, s in pretrained.load_manifest().items() if s.kind in ("instrument", "vst")}


def model_card(name: str, folder: str = "") -> str:
    """Markdown: a model's description, licence and attribution (manifest entry or the
    folder's ``model.json``)."""
    if folder.strip():
        path = Path(folder.strip()).expanduser()
        try:
            info = json.loads((path / MODEL_JSON).read_text())
        except (OSError, ValueError):
            return f"**{path}** is not a model folder (no readable `{MODEL_JSON}`)."
        fields = (info.get("description"), info.get("license"), info.get("attribution"))
        title = info.get("name") or path.name
    else:
        spec = model_choices().get(name)
        if spec is None:
            return f"unknown model {name!r}"
        fields, title = (spec.description, spec.license, spec.attribution), name
    description, licence, attribution = (f or "not stated" for f in fields)
    return (f"**{title}**: {description}  \n**Licence:** {licence}  \n"
            f"**Attribution:** {attribution}")  # fmt: skip


@dataclass
class _Player:
    instrument: Instrument
    lock: threading.Lock = field(default_factory=threading.Lock)


# ---------------------------------------------------------------------------------------------
# The server's state: instruments, sessions, temporary files.


class Studio:
    """Opened instruments (one per model and pitch tracker, each with its lock) and the
    temporary folders of the browser sessions, all under `root`."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="ddsp-studio-")).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._players: dict[tuple[str, str], _Player] = {}
        self._lock = threading.Lock()
        self._uploads: dict[str, set[str]] = {}  # upload path -> sessions that use it

    # Instruments ------------------------------------------------------------------------------

    def player(self, model: str, pitch_model: str) -> _Player:
        """The cached `Instrument` for `model` (a name or a folder) with `pitch_model`."""
        key = (model, pitch_model)
        with self._lock:
            if key not in self._players:
                if os.sep in model and not (Path(model) / MODEL_JSON).is_file():
                    raise ModelError(f"{model} is not a model folder (it has no {MODEL_JSON}); "
                                     "give a folder written by `ddsp fit` or `ddsp models "
                                     "export`")  # fmt: skip
                self._players[key] = _Player(Instrument.open(model, pitch_model=pitch_model))
            return self._players[key]

    # Sessions --------------------------------------------------------------------------------

    def session_dir(self, session: str) -> Path:
        folder = self.root / f"session-{_safe(session)}"
        folder.mkdir(exist_ok=True)
        return folder

    def track_upload(self, path: str, session: str) -> None:
        with self._lock:
            self._uploads.setdefault(path, set()).add(session)

    def discard_upload(self, path: str) -> None:
        """Delete an upload (and its folder in Gradio's cache when empty)."""
        with self._lock:
            self._uploads.pop(path, None)
        _remove_file(Path(path), self.root)

    def end_session(self, session: str) -> None:
        """Remove a closed session's folder and the uploads no other session uses."""
        shutil.rmtree(self.root / f"session-{_safe(session)}", ignore_errors=True)
        with self._lock:
            unused = [p for p, users in self._uploads.items() if users == {session}]
            for users in self._uploads.values():
                users.discard(session)
            for p in unused:
                del self._uploads[p]
        for p in unused:
            _remove_file(Path(p), self.root)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # Work ------------------------------------------------------------------------------------

    def check_input(self, path: str | None) -> None:
        """Refuse an input beyond the limits or that is not audio (`InputError`, one line)."""
        if not path:
            raise InputError("upload a recording or record one first")
        size = Path(path).stat().st_size
        name = Path(path).name
        if size == 0:
            raise InputError(f"{name} is empty (0 bytes)")
        if size > MAX_UPLOAD_MB * 1e6:
            raise InputError(f"{name} is {size / 1e6:.0f} MB; the studio takes files up to "
                             f"{MAX_UPLOAD_MB} MB")  # fmt: skip
        import soundfile as sf

        try:
            seconds = sf.info(path).duration
        except (RuntimeError, sf.LibsndfileError):
            seconds = None  # decoded below, which says why it cannot be
        if seconds is not None and seconds > MAX_SECONDS:
            raise InputError(f"{name} is {seconds / 60:.1f} min long; the studio takes up to "
                             f"{MAX_SECONDS / 60:.0f} min (use `ddsp transfer` for longer "
                             "takes)")  # fmt: skip
        _, info = audio_io.read_audio(path, None)
        if info.duration_s > MAX_SECONDS:
            raise InputError(f"{name} is {info.duration_s / 60:.1f} min long; the studio takes "
                             f"up to {MAX_SECONDS / 60:.0f} min")  # fmt: skip

    def analyse(self, path: str, model: str, pitch_model: str, session: str) -> Path:
        """A PNG of the input (spectrogram, f0, loudness) as the model hears it."""
        player = self.player(model, pitch_model)
        inst = player.instrument
        audio, _ = audio_io.read_audio(path, inst.sample_rate)
        with player.lock:
            feats = inst.features(audio, inst.sample_rate)
        dest = self.session_dir(session) / f"input-{os.urandom(4).hex()}.png"
        features_io.plot(audio, feats, inst.sample_rate, inst.frame_rate, dest,
                         title=f"{Path(path).name}: f0 and loudness")  # fmt: skip
        return dest

    def render_settings(
        self, model: str, pitch_model: str, room: str | None = None,
        room_mix_db: float = choices.ROOM_MIX_DB,
    ) -> transfer.RenderSettings:  # fmt: skip
        """``--room ROOM --room-mix DB`` for `model` as ``ddsp transfer`` takes them (`room`:
        None for the model's own, `choices.ROOM_NONE`, a model name or an IR file).

        Raises:
            InputError: a bad IR file, a missing one, or a level without a room.
            ModelError: a room model that is unknown or has no room.
        """
        inst = self.player(model, pitch_model).instrument
        plays = room != choices.ROOM_NONE
        ir = inst.open_room(room).wet if plays and room is not None else None
        try:
            inst.room_ir(ir, room_mix_db, plays)
        except ValueError as err:
            raise InputError(f"room mix {room_mix_db:g} dB: {err}") from None
        return transfer.RenderSettings(reverb=plays, room=ir, room_mix_db=room_mix_db)

    def transfer(
        self, path: str, model: str, pitch_model: str, session: str, run: str,
        adjustments: adjust_lib.Adjustments, stems: bool = True,
        rsettings: transfer.RenderSettings | None = None,
    ) -> dict:  # fmt: skip
        """``ddsp transfer PATH --model MODEL`` with `adjustments` (and the room of
        `rsettings`, from `render_settings`), into the session's folder ``run/``: returns
        `run_job`'s summary plus ``plot`` and ``stems`` (part -> path)."""
        rsettings = rsettings or transfer.RenderSettings()
        player = self.player(model, pitch_model)
        inst = player.instrument
        folder = self.session_dir(session) / run
        folder.mkdir(exist_ok=True)
        stem = Path(path).stem
        job = transfer.Job(path, str(folder / f"{stem}.{inst.name}.wav"),
                           plot=str(folder / f"{stem}.{inst.name}.png"),
                           stems_dir=str(folder / "stems") if stems else None,
                           label=Path(path).name)  # fmt: skip
        pipeline = transfer.Pipeline(inst, inst.name, adjustments, rsettings)
        transfer.check_outputs([job], inst.name, None, force=True)
        with player.lock:
            summary = transfer.run_job(job, pipeline, force=True)
        names = inst.stem_names(rsettings.reverb, rsettings.room)
        parts = transfer.stem_paths(job, inst.name, names) if stems else {}
        return {**summary, "plot": job.plot, "stems": parts}


def room_spec(kind: str, model: str | None, ir_path: str | None) -> str | None:
    """The page's room choice as ``--room`` takes it (None: the model's own room)."""
    if kind == ROOM_DRY:
        return choices.ROOM_NONE
    if kind == ROOM_MODEL:
        return model or None
    if kind == ROOM_FILE:
        if not ir_path:
            raise InputError("upload an impulse response (a WAV) for the room first")
        return ir_path
    return None


def _safe(session: str) -> str:
    return "".join(c for c in session if c.isalnum() or c in "-_")[:64] or "anonymous"


def _remove_file(path: Path, root: Path) -> None:
    """Delete `path` (only inside `root`) and its folder when that is left empty."""
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return
    path.unlink(missing_ok=True)
    if path.parent != root:
        with contextlib.suppress(OSError):
            path.parent.rmdir()


# ---------------------------------------------------------------------------------------------
# The page.


def _gradio(root: Path):
    """Gradio, imported with its analytics off and its upload cache inside `root`."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["GRADIO_TEMP_DIR"] = str(root)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import gradio as gr

    return gr


def _summary_line(summary: dict) -> str:
    report = summary["adjustments"]
    line = (f"**{summary['model']}**: {summary['seconds']:.1f} s, pitch "
            f"{report.get('semitones', 0.0):+g} semitones, gain {summary['gain_db']:+.1f} dB, "
            f"{summary['wall_s']:.1f} s to render")  # fmt: skip
    return line + "".join(f"  \nwarning: {w}" for w in summary["warnings"])


def build(studio: Studio):
    """The Gradio Blocks app on `studio` (not launched)."""
    gr = _gradio(studio.root)
    names = list(model_choices())
    default = "violin" if "violin" in names else names[0]
    with gr.Blocks(title="ddsp studio", analytics_enabled=False) as demo:
        gr.Markdown("# ddsp studio\nUpload or record a take, pick an instrument, listen. "
                    f"Up to {MAX_UPLOAD_MB} MB and {MAX_SECONDS / 60:.0f} minutes per take; "
                    "the same numbers as `ddsp transfer`.")  # fmt: skip
        with gr.Row():
            with gr.Column():
                take = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                label="Input", elem_id="take")  # fmt: skip
                input_plot = gr.Image(label="Input: spectrogram, pitch, loudness",
                                      elem_id="input-plot", interactive=False)  # fmt: skip
            with gr.Column():
                model = gr.Dropdown(names, value=default, label="Model", elem_id="model")
                folder = gr.Textbox(label="...or a model folder (path on this machine)",
                                    placeholder="runs/violin", elem_id="folder")  # fmt: skip
                card = gr.Markdown(model_card(default), elem_id="card")
                compare = gr.Dropdown([NO_MODEL, *names], value=NO_MODEL,
                                      label="A/B: compare with", elem_id="compare")  # fmt: skip
                with gr.Row():
                    octave = gr.Slider(-4, 4, 0, step=1, label="Octave", elem_id="octave")
                    semitones = gr.Slider(-24, 24, 0, step=0.5, label="Semitones",
                                          elem_id="semitones")  # fmt: skip
                with gr.Row():
                    auto = gr.Checkbox(True, label="Auto-adjust", elem_id="auto")
                    pitch_model = gr.Radio(list(PITCH_MODELS),
                                           value=choices.TRANSFER_PITCH_MODEL.value,
                                           label="Pitch tracker (CREPE)")  # fmt: skip
                with gr.Row():
                    autotune = gr.Slider(0, 1, 0, step=0.05, label="Autotune")
                    loudness = gr.Slider(-24, 24, 0, step=1, label="Loudness shift (dB)")
                    quiet = gr.Slider(0, 60, 20, step=1, label="Quiet dB (auto-adjust)")
                with gr.Row():
                    room_kind = gr.Radio(list(ROOM_KINDS), value=ROOM_OWN, label="Room",
                                         elem_id="room")  # fmt: skip
                    room_model = gr.Dropdown(names, value=default, label="...another model's room",
                                             elem_id="room-model")  # fmt: skip
                with gr.Row():
                    room_file = gr.File(label="...or an impulse response (WAV, at most "
                                        f"{choices.MAX_ROOM_IR_S:g} s)", type="filepath",
                                        elem_id="room-ir")  # fmt: skip
                    room_mix = gr.Slider(choices.MIN_ROOM_MIX_DB, choices.MAX_ROOM_MIX_DB,
                                         choices.ROOM_MIX_DB, step=0.5, label="Room mix (dB)",
                                         elem_id="room-mix")  # fmt: skip
                run = gr.Button("Transfer", variant="primary", elem_id="run")
        status = gr.Markdown("", elem_id="status")
        with gr.Row():
            out_a = gr.Audio(label="Output", type="filepath", interactive=False,
                             elem_id="out-a")  # fmt: skip
            out_b = gr.Audio(label="Output B (A/B)", type="filepath", interactive=False,
                             elem_id="out-b")  # fmt: skip
        download = gr.File(label="Download (WAV)", interactive=False, elem_id="download")
        plot = gr.Image(label="Transfer: spectrograms, f0, loudness", interactive=False,
                        elem_id="plot")  # fmt: skip
        stems = gr.File(label="Stems (harmonic, noise, reverb: they sum to the output)",
                        file_count="multiple", interactive=False, elem_id="stems")  # fmt: skip

        def which(name: str, path: str) -> str:
            return str(Path(path.strip()).expanduser().resolve()) if path.strip() else name

        def on_model(name: str, path: str) -> str:
            return model_card(name, path)

        def on_take(path, name, path_box, tracker, request: gr.Request):
            session = request.session_hash or "anonymous"
            if not path:
                return gr.skip(), None, ""
            studio.track_upload(path, session)
            try:
                studio.check_input(path)
            except (DdspError, OSError) as err:
                studio.discard_upload(path)
                return None, None, f"**Cannot use this file:** {err}"
            try:
                image = studio.analyse(path, which(name, path_box), tracker, session)
            except DdspError as err:  # the model, not the take: keep the take
                return gr.skip(), None, f"**Error:** {err}"
            return gr.skip(), str(image), ""

        def on_run(path, name, path_box, other, tracker, octv, semi, is_auto, tune, shift,
                   quiet_db, kind, room_name, ir_path, mix, request: gr.Request):  # fmt: skip
            session = request.session_hash or "anonymous"
            empty = (None, None, None, None, None)
            if ir_path:
                studio.track_upload(ir_path, session)
            try:
                spec = room_spec(kind, room_name, ir_path)
                rsettings = studio.render_settings(which(name, path_box), tracker, spec,
                                                   float(mix))  # fmt: skip
                compared = other and other != NO_MODEL
                rsettings_b = studio.render_settings(other, tracker, spec, float(mix)) if \
                    compared else None  # fmt: skip
            except (DdspError, OSError) as err:
                if ir_path and kind == ROOM_FILE and isinstance(err, InputError | OSError):
                    studio.discard_upload(ir_path)
                return (*empty, f"**Room:** {err}")
            settings = adjust_lib.Adjustments(
                auto=bool(is_auto), quiet_db=float(quiet_db), octaves=int(octv),
                semitones=float(semi), loudness_shift_db=float(shift), autotune=float(tune),
            )  # fmt: skip
            try:
                studio.check_input(path)
                for old in studio.session_dir(session).glob("run-*"):
                    shutil.rmtree(old, ignore_errors=True)  # one result per session kept
                run_id = f"run-{os.urandom(4).hex()}"
                a = studio.transfer(path, which(name, path_box), tracker, session, run_id,
                                    settings, rsettings=rsettings)  # fmt: skip
                b = None
                if compared:
                    b = studio.transfer(path, other, tracker, session, run_id + "-b", settings,
                                        stems=False, rsettings=rsettings_b)  # fmt: skip
            except (DdspError, OSError) as err:
                if path and isinstance(err, InputError | OSError):
                    studio.discard_upload(path)
                return (*empty, f"**Error:** {err}")
            lines = [_summary_line(a)] + ([_summary_line(b)] if b else [])
            return (a["output"], b["output"] if b else None, a["output"], a["plot"],
                    list(a["stems"].values()), "  \n".join(lines))  # fmt: skip

        inputs_card = [model, folder]
        model.change(on_model, inputs_card, card, queue=False)
        folder.change(on_model, inputs_card, card, queue=False)
        take_inputs = [take, model, folder, pitch_model]
        take_outputs = [take, input_plot, status]
        take.upload(on_take, take_inputs, take_outputs, concurrency_id="engine")
        take.stop_recording(on_take, take_inputs, take_outputs, concurrency_id="engine")
        run.click(on_run, [take, model, folder, compare, pitch_model, octave, semitones, auto,
                           autotune, loudness, quiet, room_kind, room_model, room_file, room_mix],
                  [out_a, out_b, download, plot, stems, status],
                  concurrency_id="engine")  # fmt: skip

        def on_unload(request: gr.Request):
            studio.end_session(request.session_hash or "anonymous")

        demo.unload(on_unload)
    demo.queue(default_concurrency_limit=1)
    return demo


def serve(host: str, port: int | None, open_browser: bool, on_ready=None) -> None:
    """Build and launch the page; block until interrupted, then remove every temporary file."""
    import time

    studio = Studio()
    try:
        demo = build(studio)
        demo.launch(server_name=host, server_port=port, inbrowser=open_browser, share=False,
                    prevent_thread_lock=True, quiet=True, show_error=True, ssr_mode=False,
                    max_file_size=f"{MAX_UPLOAD_MB}mb", allowed_paths=[str(studio.root)],
                    footer_links=[], pwa=False, mcp_server=False)  # fmt: skip
        if on_ready is not None:
            on_ready(demo.local_url)
        try:
            while True:
                time.sleep(0.5)
        finally:
            demo.close()
    finally:
        studio.close()
