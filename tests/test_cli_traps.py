"""Friction a new user met on the command line and with files (issue 19, item 23): a mistyped
option gets a "did you mean", an option the chosen setting ignores is refused by one rule,
`explain --html ""` is an error, a directory given as a file is called a directory, and a
solution file with a NUL byte is not reported at "line None"."""

import pytest

import tinygrad_mlp as tm
from tinygrad_mlp.cli import main


def usage_error(capsys, arguments, monkeypatch):
    """The error line of `main(arguments)` (argparse's usage line may come first), once it
    exited 2 without training."""
    trained = []
    monkeypatch.setattr("tinygrad_mlp.train.fit", lambda *a, **k: trained.append(1))
    assert main(arguments) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert not trained and "Traceback" not in err and len(lines) <= 2, err
    return lines[-1]


@pytest.mark.parametrize("arguments, message", [
    (["train", "--hiden", "32"], "unrecognized arguments: --hiden 32; did you mean --hidden?"),
    (["train", "--epochs", "1", "--momentun=0.5"], "did you mean --momentum?"),
    (["explain", "--htlm", "walk.html"], "did you mean --html?"),
])
def test_a_mistyped_option_gets_a_did_you_mean(arguments, message, capsys, monkeypatch):
    assert message in usage_error(capsys, arguments, monkeypatch)


@pytest.mark.parametrize("arguments, message", [
    (["train", "--optimizer", "adam", "--momentum", "0.5"],
     "--momentum applies to --optimizer sgd, not --optimizer adam"),
    (["train", "--model", "cnn", "--momentum", "0.5"],
     "--momentum applies to --optimizer sgd, not --optimizer adam (the default with --model "
     "cnn)"),
    (["train", "--method", "gd", "--batch-size", "8"],
     "--batch-size applies to --method minibatch, not --method gd"),
])
def test_an_option_the_chosen_setting_ignores_is_refused(arguments, message, capsys,
                                                         monkeypatch):
    assert message in usage_error(capsys, arguments, monkeypatch)


def test_explain_html_with_an_empty_name_is_an_error_not_ignored(capsys, monkeypatch):
    err = usage_error(capsys, ["explain", "--html", ""], monkeypatch)
    assert "--html needs a file name, got ''" in err


@pytest.mark.parametrize("load", [tm.datasets.load_idx, tm.datasets.load_fer2013])
def test_a_directory_given_as_a_data_file_is_called_a_directory(load, tmp_path):
    with pytest.raises(IsADirectoryError, match=f"{str(tmp_path)!r} is a directory, not a file"):
        load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load(tmp_path / "missing")


def test_an_exercise_solution_that_is_a_directory_or_holds_a_nul_byte(tmp_path, capsys):
    assert main(["exercise", "check", "sigmoid", str(tmp_path)]) == 1
    assert f"{tmp_path}: a directory, not a file" in capsys.readouterr().err
    answer = tmp_path / "answer.py"
    answer.write_bytes(b"x = 1\x00\n")
    assert main(["exercise", "check", "sigmoid", str(answer)]) == 1
    err = capsys.readouterr().err
    assert f"{answer}: syntax error: source code string cannot contain null bytes" in err
    assert "None" not in err
