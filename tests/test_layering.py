"""Layering rules of DESIGN.md §1, checked on the source: the sans-IO protocol core never imports
asyncio, socket, time or the I/O layer, and imports point downward only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "quicsilver"
SANS_IO = ("wire", "handshake", "ackhandler", "congestion", "core")
FORBIDDEN_STDLIB = {"asyncio", "socket", "time", "selectors", "threading"}
# Packages of the I/O layer and above, which the protocol core must never import.
UPPER = {
    "transport",
    "server",
    "client",
    "multiplexer",
    "listener",
    "api_connection",
    "stream",
    "sys",
    "cli",
    "apps",
}
# Downward order inside the core: a package may import only packages listed after it here.
ORDER = ["core", "ackhandler", "congestion", "handshake", "wire"]


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    rel_pkg = path.relative_to(SRC).parts[:-1]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel_pkg[: len(rel_pkg) - (node.level - 1)]) if node.level > 1 else list(rel_pkg)
                mod = ".".join(["quicsilver", *base, *(node.module.split(".") if node.module else [])])
            else:
                mod = node.module or ""
            found.append((mod, node.lineno))
    return found


def _sans_io_files() -> list[Path]:
    return sorted(p for pkg in SANS_IO for p in (SRC / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", _sans_io_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_sans_io_core_imports_no_io(path: Path) -> None:
    pkg = path.relative_to(SRC).parts[0]
    for mod, line in _imports(path):
        top = mod.split(".")[0]
        assert top not in FORBIDDEN_STDLIB, f"{path.name}:{line} imports {mod} (sans-IO core, DESIGN.md §1)"
        parts = mod.split(".")
        if parts[0] == "quicsilver" and len(parts) > 1:
            target = parts[1]
            assert target not in UPPER, f"{path.name}:{line} imports the I/O layer ({mod})"
            if target in ORDER and pkg in ORDER:
                assert ORDER.index(target) >= ORDER.index(pkg), (
                    f"{path.name}:{line}: {pkg} may not import {target} (imports point downward)"
                )


def test_core_packages_exist() -> None:
    for pkg in SANS_IO:
        assert (SRC / pkg / "__init__.py").exists()
