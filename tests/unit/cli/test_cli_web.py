"""``quantfleet web`` becomes ``python -m quantfleet.web`` with the same options (faces import no other face)."""

from __future__ import annotations

import subprocess
import sys

from quantfleet.cli.web import MODULE, command_line


def test_the_command_line_keeps_the_interface() -> None:
    argv = command_line("127.0.0.1", 8050, "http://127.0.0.1:8000", 8)
    assert argv == [
        sys.executable,
        "-m",
        MODULE,
        "--host",
        "127.0.0.1",
        "--port",
        "8050",
        "--api-url",
        "http://127.0.0.1:8000",
        "--threads",
        "8",
    ]


def test_the_module_entry_point_takes_those_options() -> None:
    shown = subprocess.run([sys.executable, "-m", MODULE, "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    for option in ("--host", "--port", "--api-url", "--threads"):
        assert option in shown.stdout
