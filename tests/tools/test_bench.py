"""The benchmark harness: ratios, table, argument checks, and one small real run (qh3 peers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_run() -> ModuleType:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import run  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return run  # type: ignore[no-any-return]


run = load_run()


def test_ratio_direction() -> None:
    assert run.ratio(20.0, 10.0, higher_is_better=True) == "2.00x"
    assert run.ratio(5.0, 10.0, higher_is_better=False) == "2.00x"  # half the latency / memory
    assert run.ratio(None, 10.0, higher_is_better=True) == "-"
    assert run.ratio(1.0, 0.0, higher_is_better=True) == "-"


def test_summarize_takes_medians() -> None:
    samples = [{"mbps": 1.0, "seconds": 3.0}, {"mbps": 5.0, "seconds": 1.0}, {"mbps": 2.0, "seconds": 2.0}]
    assert run.summarize(samples) == {"mbps": 2.0, "seconds": 2.0}


def test_table_has_every_figure_and_ratio_column() -> None:
    results = {
        "quicsilver": {
            "download": {"median": {"mbps": 30.0}},
            "idle": {"median": {"server_rss_per_conn": 20480}},
        },
        "qh3": {"download": {"median": {"mbps": 20.0}}, "idle": {"median": {"server_rss_per_conn": 40960}}},
    }
    table = run.format_table(results, ["quicsilver", "qh3"])
    lines = table.splitlines()
    assert lines[0].split() == ["figure", "quicsilver", "qh3", "qs", "vs", "qh3"]
    download = next(line for line in lines if line.startswith("download"))
    assert download.split()[-3:] == ["30.0", "20.0", "1.50x"]
    rss = next(line for line in lines if line.startswith("server RSS"))
    assert rss.split()[-3:] == ["20.0", "40.0", "2.00x"]  # KiB, lower is better
    assert next(line for line in lines if line.startswith("upload")).split()[-1] == "-"


def test_last_error_line_skips_traceback_markers() -> None:
    stderr = "\n".join(
        [
            "Traceback (most recent call last):",
            "  File 'x'",
            "    f()",
            "    ^^^",
            "ValueError: stream 0 gone",
            "  ^^^^",
        ]
    )
    assert run.last_error_line(stderr) == "ValueError: stream 0 gone"
    assert run.last_error_line("") == "(no error output)"


@pytest.mark.parametrize(
    "args", [["--only", "msquic"], ["--scenarios", "latency"], ["--reps", "0"], ["--only", ""]]
)
def test_bad_arguments_are_refused(args: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run.parse_args(args)
    assert info.value.code == 2


def test_a_small_run_writes_json_and_the_table(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--only", "qh3", "--reps", "1", "--size", "200000",
         "--scenarios", "download,handshakes,idle", "--handshakes", "3", "--idle", "5", "--output", str(out)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "download [MB/s]" in result.stdout
    document = json.loads(out.read_text())
    qh3 = document["results"]["qh3"]
    assert qh3["download"]["median"]["mbps"] > 0
    assert qh3["download"]["samples"][0]["bytes"] == 200000
    assert qh3["handshakes"]["median"]["per_second"] > 0
    assert qh3["idle"]["median"]["server_rss_per_conn"] > 0
    assert document["options"]["size"] == 200000
