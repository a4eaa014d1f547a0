"""`python -m ddspcli` and the `ddsp` console script: the CLI, imported inside a guard so that
Ctrl-C during the imports (before `cli.run` has its handlers) is a quiet 130, not a traceback."""

import sys


def main() -> None:
    """Import the CLI and run it; an interrupt while importing exits 130 (143 for SIGTERM)."""
    try:
        from ddspcli.cli import main as cli_main
    except KeyboardInterrupt:
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
