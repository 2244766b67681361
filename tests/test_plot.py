"""Training curves: drawn by kspec train, redrawn by kspec plot."""

from __future__ import annotations

from click.testing import CliRunner
from conftest import SPECS

from kspec.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_train_draws_curves_and_plot_redraws_them(tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(SPECS / "mlp.yaml"), "--synthetic", "32", "--epochs", "2",
                                       "--validation-split", "0.25", "--out", str(run), "-q"])
    assert result.exit_code == 0, result.output
    curves = run / "curves.png"
    assert curves.read_bytes()[:8] == PNG_MAGIC
    curves.unlink()
    result = CliRunner().invoke(main, ["plot", str(run)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {curves}\n"
    assert curves.read_bytes()[:8] == PNG_MAGIC


def test_plot_of_a_folder_without_history(tmp_path):
    result = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr == (f"{tmp_path / 'history.csv'}: error: no history.csv here\n"
                             "  hint: give the folder of a `kspec train` run\n")


def test_missing_matplotlib_is_a_clear_error(tmp_path, monkeypatch):
    from kspec import plot as curves

    (tmp_path / "history.csv").write_text("epoch,loss\n1,0.5\n")
    monkeypatch.setattr(curves, "available", lambda: False)
    result = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr == (f"{tmp_path / 'curves.png'}: error: matplotlib is not installed, so curves cannot "
                             "be drawn\n  hint: install the plot extra: pip install 'kspec[plot]'\n")
