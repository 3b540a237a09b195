"""The suite runs against the build it means to: the pure sources (the README's editable install) or
the wheel whose hot path setup.py compiled with mypyc (``.ci/compiled-tests.sh`` sets
QUICSILVER_EXPECT_BUILD=compiled). A partly compiled package would be a stale or broken build."""

from __future__ import annotations

import importlib
import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from setup import COMPILED_GLOBS, NOT_COMPILED  # noqa: E402

sys.path.remove(str(ROOT))


def _listed_modules() -> list[str]:
    names = []
    for pattern in COMPILED_GLOBS:
        for path in sorted(ROOT.glob(pattern)):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in NOT_COMPILED:
                module = rel.removeprefix("src/").removesuffix(".py").removesuffix("/__init__")
                names.append(module.replace("/", "."))
    return names


def test_setup_lists_the_hot_path() -> None:
    names = _listed_modules()
    hot_path = (
        "quicsilver.core.connection",
        "quicsilver.core.unpacker",
        "quicsilver.ackhandler.sent",
        "quicsilver.wire.frame_types",  # one or more frame objects per packet, both ways
    )
    for hot in hot_path:
        assert hot in names
    assert "quicsilver.core.events" not in names


def test_every_listed_module_is_of_the_expected_build() -> None:
    files = {name: str(importlib.import_module(name).__file__) for name in _listed_modules()}
    compiled = {name: not path.endswith(".py") for name, path in files.items()}
    expected = os.environ.get("QUICSILVER_EXPECT_BUILD")
    if expected is not None and expected not in ("compiled", "pure"):
        pytest.fail(f"QUICSILVER_EXPECT_BUILD must be 'compiled' or 'pure', not {expected!r}")
    if expected is None:
        assert len(set(compiled.values())) == 1, f"partly compiled: {compiled}"
    else:
        wrong = [name for name, is_compiled in compiled.items() if is_compiled != (expected == "compiled")]
        assert not wrong, f"not the {expected} build: {wrong}"
