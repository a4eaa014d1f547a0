"""Allow `python -m ddspcli`."""

from ddspcli.cli import main

main()
