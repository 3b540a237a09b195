#!/usr/bin/env bash
# The wheel that `pip install quicsilver` builds compiles the hot path with mypyc (setup.py), while
# the README's editable install stays pure Python: run the same test suite against that wheel too.
# QUICSILVER_COMPILE=1 makes a failed compile an error here instead of a silent pure build.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
QUICSILVER_COMPILE=1 python -m pip wheel --no-deps --quiet -w "$out/wheel" .
# Unpacked, not installed: the editable install stays as the README made it; PYTHONPATH puts the
# compiled package first for this run only.
python -m zipfile -e "$out"/wheel/quicsilver-*.whl "$out/site"
QUICSILVER_EXPECT_BUILD=compiled PYTHONPATH="$out/site" python -m pytest -p no:cacheprovider
