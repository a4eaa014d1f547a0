"""Running the command tree: the one place where outcomes become exit codes."""

from __future__ import annotations

import sys

import typer

from ddspcli import ui
from ddspcli.cli._app import app
from ddspcli.errors import EXIT_INTERNAL, DdspError

# The commands that need the training extra (TensorFlow), declared once: on the light install
# (`pip install ddspcli`) each answers with one line naming the install command and exit 6,
# before any work. Every other command runs on the TensorFlow-free runtime.
TRAINING_COMMANDS = frozenset({"prepare", "fit", "eval", "models import", "models export"})


def build_command():
    """The click command tree of `app`, with every float option checked to be finite.

    Checking the parsed values of every command in one place means no float option, present
    or future, can let NaN or infinity through (``--semitones nan`` would render silence).
    """
    import functools
    import math

    from ddspcli.errors import OutputClosedError

    click = _click()
    command = typer.main.get_command(app)

    def checked(sub, path: str):
        original = sub.callback
        needs_training = path in TRAINING_COMMANDS
        bounds = {}  # float options' ranges, checked after finiteness (NaN is in no range)
        for param in sub.params:
            descriptor = getattr(param, "type_descriptor", None)
            if getattr(descriptor, "annotation", None) in (float, float | None):
                bounds[param.name] = (param.min, param.max)
                param.type_descriptor = _unbounded(descriptor)
                param._runtime_param = None

        @functools.wraps(original)
        def callback(**kwargs):
            ctx = click.get_current_context()
            if needs_training:
                _require_training(path)
            for param in ctx.command.params:
                value = kwargs.get(param.name)
                if isinstance(value, float) and not math.isfinite(value):
                    raise typer.BadParameter(f"{value} is not a finite number", ctx, param)
                low, high = bounds.get(param.name, (None, None))
                if isinstance(value, float) and low is not None and value < low:
                    raise typer.BadParameter(f"{value:g} is below the least allowed, {low:g}",
                                             ctx, param)  # fmt: skip
                if isinstance(value, float) and high is not None and value > high:
                    raise typer.BadParameter(f"{value:g} is above the most allowed, {high:g}",
                                             ctx, param)  # fmt: skip
            try:
                return original(**kwargs)
            except BrokenPipeError:  # not an OSError for Typer, which would exit 1
                raise OutputClosedError("stdout was closed by its reader") from None
            except KeyboardInterrupt as err:  # Typer would make every interrupt 130
                raise _StoppedError(_interrupted_code(err)) from None

        sub.callback = callback

    stack = [("", command)]
    while stack:
        prefix, group = stack.pop()
        for name, sub in getattr(group, "commands", {}).items():
            path = f"{prefix} {name}".strip()
            stack.append((path, sub))
            sub.help = reflow(sub.help)
            if sub.callback is not None:
                checked(sub, path)
    return command


def _require_training(path: str) -> None:
    """`RunError` (exit 6) when `ddsp PATH` needs TensorFlow and this install has none."""
    from ddspcli import tfimport
    from ddspcli.errors import RunError

    if not tfimport.available():
        raise RunError(f"`ddsp {path}` needs the training extra (TensorFlow), which this "
                       f"install lacks: {tfimport.TRAIN_EXTRA}")  # fmt: skip


def reflow(text: str | None) -> str | None:
    """A docstring's help with each paragraph on one line, so that the terminal wraps it at
    its own width (the source's line breaks, at 95 columns, re-wrapped raggedly at 80)."""
    if not text:
        return text
    paragraphs = [" ".join(p.split()) for p in text.strip().split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def _internal_error(err: Exception) -> int:
    """A bug: one line (the traceback with ``-v``), exit 1."""
    if ui.state.verbosity >= ui.VERBOSE:
        raise err
    ui.error(f"internal error: {type(err).__name__}: {err} (rerun with -v for a traceback)")
    return EXIT_INTERNAL


def _cache_error(err: OSError):
    """The model cache (``$DDSP_HOME``) cannot be used: a `ModelError` saying why and what to
    do, or None when `err` is about another path. Every command's cache writes (downloads,
    locks, imported and converted models) end here, wherever they happen."""
    import os

    from ddspcli import pretrained, storage
    from ddspcli.errors import ModelError

    root = os.path.abspath(pretrained.cache_root())
    names = [os.path.abspath(n) for n in (err.filename, err.filename2) if isinstance(n, str)]
    if not any(n == root or n.startswith(root + os.sep) for n in names):
        return None
    reason = storage.output_error(root, err).args[0].split(": ", 1)[-1]
    return ModelError(f"cannot use the model cache {root} ({reason}); set DDSP_HOME to a "
                      "folder this user can write, or unset it")  # fmt: skip


def _unbounded(descriptor):
    """A copy of Typer's type descriptor of an option without its min and max (shared by
    every command using the same option alias: copied, never changed)."""
    import copy
    import dataclasses

    info = copy.copy(descriptor.parameter_info)
    info.min = info.max = None
    return dataclasses.replace(descriptor, parameter_info=info)


def run(argv: list[str] | None = None) -> int:
    """Run ``ddsp`` with `argv` (default: the process's) and return its exit code.

    The one place where outcomes become exit codes: usage errors one line and 2, `DdspError`s
    one line and their code, a reader that closed stdout 141 (quietly, as a process killed
    by SIGPIPE), Ctrl-C 130, SIGTERM 143, anything else a bug (1; the traceback with ``-v``).
    Warnings the engine raises as `DdspWarning` are printed as ``warning:`` lines.
    """
    import warnings

    from ddspcli import interrupts, storage
    from ddspcli.errors import (
        EXIT_INTERRUPTED,
        EXIT_TERMINATED,
        EXIT_USAGE,
        DdspWarning,
        OutputClosedError,
    )

    storage.forget_inputs()
    interrupts.install()
    ui.state.verbosity = ui.NORMAL
    show = warnings.showwarning

    def show_warning(message, category, *args, **kwargs):
        if issubclass(category, DdspWarning):
            ui.warn(str(message))
        else:
            show(message, category, *args, **kwargs)

    click = _click()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", DdspWarning)
            warnings.showwarning = show_warning
            code = build_command().main(args=argv, prog_name="ddsp", standalone_mode=False)
        code = code if isinstance(code, int) else 0
        # Typer makes any interrupt while it parses options 130; a SIGTERM is still 143
        return EXIT_TERMINATED if code == EXIT_INTERRUPTED and interrupts.terminated else code
    except click.NoArgsIsHelpError as err:
        print(err.ctx.get_help(), file=sys.stderr)
        return EXIT_USAGE
    except click.UsageError as err:
        ui.error(_usage_line(err))
        return EXIT_USAGE
    except click.ClickException as err:
        ui.error(err.format_message())
        return err.exit_code
    except (click.Abort, typer.Abort) as err:
        return _interrupted_code(err)
    except (OutputClosedError, BrokenPipeError):
        return _stdout_closed()
    except _StoppedError as stop:
        return stop.code
    except DdspError as err:
        ui.error(str(err))
        return err.exit_code
    except KeyboardInterrupt as err:
        return _interrupted_code(err)
    except OSError as err:
        cache = _cache_error(err)
        if cache is None:
            return _internal_error(err)
        ui.error(str(cache))
        return cache.exit_code
    except Exception as err:  # a bug: say so in one line, traceback with --verbose
        return _internal_error(err)


class _StoppedError(Exception):
    """A command ended by Ctrl-C or SIGTERM, with the exit code that says which."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _interrupted_code(err: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (`interrupts.Terminated`; Click wraps it in `Abort`)."""
    from ddspcli import interrupts
    from ddspcli.errors import EXIT_INTERRUPTED, EXIT_TERMINATED
    from ddspcli.interrupts import Terminated

    cause = err if isinstance(err, KeyboardInterrupt) else err.__context__
    terminated = isinstance(cause, Terminated) or interrupts.terminated
    return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def _click():
    """The click that Typer runs on: vendored as ``typer._click`` since Typer 0.22, the click
    package before. Returns a namespace with the exceptions and `get_current_context`."""
    from types import SimpleNamespace

    try:
        from typer._click import exceptions, globals
    except ImportError:  # an older Typer on the click package
        import click

        exceptions = globals = click
    names = ("UsageError", "ClickException", "NoArgsIsHelpError")
    return SimpleNamespace(get_current_context=globals.get_current_context,
                           Abort=getattr(exceptions, "Abort", typer.Abort),
                           **{n: getattr(exceptions, n) for n in names})  # fmt: skip


def _usage_line(err) -> str:
    """A usage error as one line, with the command's --help hint."""
    message = " ".join(err.format_message().split())
    where = err.ctx.command_path if err.ctx is not None else "ddsp"
    return f"{message} (see `{where} --help`)"


def _stdout_closed() -> int:
    """The reader of stdout went away (``| head``): stop quietly, like a SIGPIPE'd process.

    stdout is pointed at /dev/null so that the interpreter's final flush cannot fail again.
    """
    import os

    from ddspcli.errors import EXIT_PIPE

    ui.debug("stdout was closed by its reader; output cut short")
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (an in-process test): nothing to protect
        pass
    return EXIT_PIPE


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())

