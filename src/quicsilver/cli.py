"""The ``quicsilver`` command line."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .protocol import SUPPORTED_VERSIONS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quicsilver", description="quicsilver QUIC transport")
    parser.add_argument("--version", action="store_true", help="print the version and capabilities")
    parser.parse_args(argv)
    print(f"quicsilver {__version__} (Python {sys.version.split()[0]})")
    print("QUIC versions: " + ", ".join(f"{v:#010x}" for v in SUPPORTED_VERSIONS))
    return 0
