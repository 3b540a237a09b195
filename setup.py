"""Build hook: compile the sans-IO hot path with mypyc when building a wheel.

The modules listed in ``COMPILED`` are ordinary, type-checked Python; mypyc turns each into a C
extension that sits next to its ``.py`` file (Python imports the extension first). Everything else,
and every module when no compiler or mypyc is available, stays interpreted: the package behaves the
same either way, the compiled build is only faster (bench/PROFILE.md, "Compiled with mypyc").

``QUICSILVER_COMPILE`` chooses:

* unset / ``auto``: compile for wheels and ``pip install .``; fall back to pure Python, with a
  warning, when mypyc or a C compiler fails. Editable installs (``pip install -e .``) stay pure,
  so an edited ``.py`` file takes effect without a rebuild.
* ``1``: always compile (editable installs too: rebuild after each edit), and fail loudly.
* ``0``: never compile.
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

# The per-packet and per-connection work: frame and header codecs, packet protection, packet numbers,
# ACK and loss handling, congestion control, the connection core (packing, unpacking, streams, flow
# control), the frame classes. Left out: events.py (public frozen dataclasses), connection_ids.py
# (a public runtime-checkable Protocol), and the TLS layer's public classes.
COMPILED_GLOBS = (
    "src/quicsilver/ackhandler/*.py",
    "src/quicsilver/congestion/*.py",
    "src/quicsilver/core/*.py",
    "src/quicsilver/wire/*.py",
    "src/quicsilver/handshake/*.py",
    "src/quicsilver/handshake/tls/*.py",
)
NOT_COMPILED = {
    "src/quicsilver/core/events.py",
    "src/quicsilver/core/connection_ids.py",
    # the TLS layer's public API (configuration, tickets and their store) and its event dataclasses
    "src/quicsilver/handshake/tls/config.py",
    "src/quicsilver/handshake/tls/tickets.py",
    "src/quicsilver/handshake/tls/events.py",
}


def _mode() -> str:
    mode = os.environ.get("QUICSILVER_COMPILE", "auto").strip().lower() or "auto"
    if mode not in ("auto", "0", "1"):
        sys.exit(f"QUICSILVER_COMPILE must be auto, 0 or 1, not {mode!r}")
    return mode


def _warn(message: str) -> None:
    print(f"quicsilver: {message}; installing the pure-Python build", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """In ``auto`` mode a failed C build (no compiler, no Python headers) leaves the package pure."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            if _mode() == "1":
                raise
            _warn(f"compiling with mypyc failed ({exc})")


def _ext_modules() -> list:
    mode = _mode()
    if mode == "0" or (mode == "auto" and "editable_wheel" in sys.argv):
        return []
    paths = sorted(
        p
        for pattern in COMPILED_GLOBS
        for p in glob.glob(pattern)
        if p.replace(os.sep, "/") not in NOT_COMPILED
    )
    try:
        from mypyc.build import mypycify
    except ImportError:
        if mode == "1":
            raise
        _warn("mypyc is not installed")
        return []
    try:
        return mypycify(paths, opt_level="3", multi_file=True, group_name="quicsilver")
    except (Exception, SystemExit) as exc:
        if mode == "1":
            raise
        _warn(f"mypyc refused the sources ({exc})")
        return []


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import the lists above
    setup(
        ext_modules=_ext_modules(),
        cmdclass={"build_ext": OptionalBuildExt},
        options={"build_ext": {"parallel": os.cpu_count() or 1}},
    )
