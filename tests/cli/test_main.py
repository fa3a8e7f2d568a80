import subprocess
import sys

import pipilot
from pipilot.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert pipilot.__version__ in capsys.readouterr().out


def test_help_lists_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "pipilot", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "usage: pipilot" in out


def test_no_command_is_an_error(capsys):
    assert main([]) == 2
