"""The command line: help, argument handling and one-line errors for user mistakes."""


import pytest
from click.testing import CliRunner

from hqflow.cli import main

from conftest import CONFIGS



@pytest.fixture
def run():
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args])


def test_help_lists_commands(run):
    result = run("--help")
    assert result.exit_code == 0
    assert "train" in result.output and "evaluate" in result.output
    assert "--resume" in run("train", "--help").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "-o", "{tmp}/r"], "--config is required"),
        (["train", "--config", "{tmp}/none.yaml", "-o", "{tmp}/r"], "none.yaml: not found; expected a config"),
        (["train", "--config", CONFIGS / "tiny.yaml", "--dataset", "mnist", "-o", "{tmp}/r"],
         "unknown data set 'mnist'; choices: digits-dvs, dvs128-gesture, cifar10-dvs, n-caltech101"),
        (["train", "--resume", "-o", "{tmp}/r"], "no checkpoint.pt"),
        (["train", "--config", CONFIGS / "tiny.yaml", "--resume", "-o", "{tmp}/r"], "--config cannot change"),
        (["train", "--config", CONFIGS / "tiny.yaml", "--resume", "--force", "-o", "{tmp}/r"], "exclude each other"),
        (["train", "--config", CONFIGS / "paper.yaml", "-o", "{tmp}/r"], "cifar10-dvs"),
        (["evaluate", "{tmp}/nothing"], "nothing: no such run folder or checkpoint file"),
        (["evaluate", "{tmp}"], "checkpoint.pt: checkpoint not found"),
    ],
)
def test_user_errors_are_one_line(run, tmp_path, args, message):
    result = run(*[str(a).format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and message in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_existing_output_needs_force(run, tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "keep.txt").write_text("x")
    result = run("train", "--config", CONFIGS / "tiny.yaml", "-o", tmp_path / "r")
    assert result.exit_code == 2 and "pass --force" in result.output
    assert (tmp_path / "r" / "keep.txt").exists()


def test_bad_config_key(run, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epoch: 3\n")
    result = run("train", "--config", cfg, "-o", tmp_path / "r")
    assert result.exit_code == 2 and "unknown key 'train.epoch'" in result.output and "epochs" in result.output
