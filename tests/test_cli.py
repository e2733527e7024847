"""The `minigpt` command as a user runs it."""
import subprocess
import sys

from minigpt.cli import main


def test_params_prints_the_statistics_table(capsys):
    assert main(["params"]) == 0
    out = capsys.readouterr().out
    assert "gpt3-175b" in out and "174,604,259,328" in out and "116,534,784" in out and "1,557,611,200" in out


def test_params_single_preset(capsys):
    main(["params", "--preset", "gpt2-xl"])
    assert "1,557,611,200" in capsys.readouterr().out


def test_info_names_the_backends(capsys):
    main(["info"])
    assert "numpy" in capsys.readouterr().out


def test_module_entry_point_and_help():
    result = subprocess.run([sys.executable, "-m", "minigpt", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "params" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "minigpt", "params", "--preset", "gpt9"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "invalid choice" in bad.stderr
