"""ddspcli: command-line timbre transfer built on DDSP."""

__version__ = "0.1.0"
