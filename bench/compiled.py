"""quicsilver as ``pip install`` gives it: a wheel of this checkout with the hot path compiled by mypyc.

``setup.py`` compiles the modules it lists when it builds a wheel; an editable install (the one the
README's development commands make) stays pure Python. The bench measures both: ``build()`` makes the
wheel with ``QUICSILVER_COMPILE=1`` (so a failed compile is an error here, not a silent pure build)
and unpacks it into a directory the peer processes put first on ``PYTHONPATH``. The build is kept
under ``bench/.build/`` and reused while the sources, ``setup.py`` and ``pyproject.toml`` are unchanged.

    python bench/compiled.py          # build (or find) it and print its directory
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.join(HERE, ".build")


class BuildError(Exception):
    """The compiled wheel could not be built; the message says why."""


def source_digest(root: str = ROOT) -> str:
    """A hash of everything the compiled build depends on in this checkout (and mypy's version)."""
    h = hashlib.sha256()
    files = sorted(glob.glob(os.path.join(root, "src", "quicsilver", "**", "*.py"), recursive=True))
    files += [os.path.join(root, "setup.py"), os.path.join(root, "pyproject.toml")]
    for path in files:
        h.update(os.path.relpath(path, root).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    try:
        import mypy.version

        h.update(mypy.version.__version__.encode())
    except ImportError:
        pass
    return h.hexdigest()[:16]


def is_compiled(package_dir: str) -> bool:
    """True if the core's connection module in ``package_dir`` is a C extension."""
    return bool(glob.glob(os.path.join(package_dir, "quicsilver", "core", "connection.*.so")))


def build(root: str = ROOT, cache: str = CACHE) -> str:
    """The directory of an unpacked compiled wheel of ``root``, built if not cached."""
    target = os.path.join(cache, f"compiled-{source_digest(root)}")
    if is_compiled(target):
        return target
    os.makedirs(cache, exist_ok=True)
    for old in glob.glob(os.path.join(cache, "compiled-*")):
        shutil.rmtree(old, ignore_errors=True)
    # setuptools keeps its scratch tree in ROOT/build between builds: extensions left there by a build
    # with another module list would go into this wheel too (a stale compiled module).
    shutil.rmtree(os.path.join(root, "build"), ignore_errors=True)
    env = dict(os.environ, QUICSILVER_COMPILE="1")
    with tempfile.TemporaryDirectory(prefix="quicsilver-wheel-") as out:
        # Without build isolation when mypy is importable here: no download, the mypy the project's
        # dev extra installed; otherwise pip fetches the build requirements from pyproject.toml.
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out, root]
        try:
            import mypy  # noqa: F401

            cmd.insert(4, "--no-build-isolation")
        except ImportError:
            pass
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        wheels = glob.glob(os.path.join(out, "quicsilver-*.whl"))
        if done.returncode != 0 or not wheels:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise BuildError("building the compiled wheel failed: " + " | ".join(tail))
        staging = target + ".tmp"
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(wheels[0]) as wheel:
            wheel.extractall(staging)
        os.replace(staging, target)
    if not is_compiled(target):
        raise BuildError(f"the wheel in {target} holds no compiled modules")
    return target


if __name__ == "__main__":
    try:
        print(build())
    except BuildError as exc:
        sys.exit(str(exc))
