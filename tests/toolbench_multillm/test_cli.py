"""`alpha-umi <subcommand>`: every listed subcommand resolves to a module with ``main``."""

import importlib
import subprocess
import sys

import pytest

from toolbench_multillm import cli


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_subcommand_has_a_main(name):
    module = importlib.import_module(cli.COMMANDS[name][0])
    assert callable(module.main)


def test_help_lists_subcommands_and_unknown_is_a_clear_error(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)
    assert cli.main(["nope"]) == 2
    assert "unknown subcommand 'nope'" in capsys.readouterr().err


def test_prepro_does_not_import_torch():
    code = "import sys; from glpft import prepro; from toolbench_multillm import cli; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
