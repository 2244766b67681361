"""kspec tune: a search that beats the spec's own learning rate, pruning, workers sharing one
study (a journal file, and a real PostgreSQL server on loopback), a killed worker, best.yaml.

The spec is a tiny regression net trained on 64 synthetic rows for 2-3 epochs,
so a trial takes seconds; every trial trains with the same seed, so trials
differ by their searched values only.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT

optuna = pytest.importorskip("optuna", reason="needs the tune extra (pip install 'kspec[tune]'); .ci/run installs it")

from kspec.cli import main  # noqa: E402
from kspec.tune import TuneOptions, shares, shown_storage, tune  # noqa: E402
from kspec.tune_report import report  # noqa: E402

BAD_RATE = 1e-7  # the spec's own learning rate: Adam barely moves in 2 epochs
SPEC = f"""\
name: tiny
inputs:
  x: {{shape: [8]}}
edges:
  hidden: {{Dense: {{units: 8, activation: relu}}}}
  y: {{Dense: {{units: 1}}}}
outputs: [y]
optimizer: {{Adam: {{learning_rate: {BAD_RATE}}}}}
loss: mse
training: {{epochs: EPOCHS, batch_size: 16, validation_split: 0.25}}
search:
  optimizer.Adam.learning_rate: {{float: [0.003, 0.1], log: true}}
objective: {{metric: val_loss, direction: minimize}}
"""
TIMEOUT = 300


def _spec(tmp_path: Path, epochs: int = 2, extra: str = "") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SPEC.replace("EPOCHS", str(epochs)).replace("objective:", extra + "objective:"))  # extra: search
    return path


def _kspec(*args: str) -> list[str]:
    return [sys.executable, "-m", "kspec", *args]


def _journal(folder: Path, name: str = "tiny") -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def _states(study: optuna.Study) -> list[str]:
    return [trial.state.name for trial in study.trials]


# ---------------------------------------------------------------- quick
def test_trials_are_shared_out_evenly_among_workers():
    assert shares(10, 3) == [4, 3, 3]
    assert shares(2, 4) == [1, 1]  # no idle worker is started
    assert shares(None, 2) == [None, None]


def test_a_password_is_never_written_into_study_json():
    assert shown_storage("postgresql://kspec:secret@db/kspec") is None
    assert shown_storage("postgresql://kspec@db/kspec") == "postgresql://kspec@db/kspec"
    assert shown_storage("shared/study.journal") == str(Path.cwd() / "shared" / "study.journal")


@pytest.mark.parametrize("args, message", [
    (["tune"], "give a SPEC to tune, or --show STUDY_DIR"),
    (["tune", "SPEC"], "give exactly one of --data FILE and --synthetic N"),
    (["tune", "SPEC", "--synthetic", "64"], "give --trials N (or --timeout SECONDS, or both)"),
])
def test_usage_mistakes_are_refused(tmp_path, args, message):
    args = [str(_spec(tmp_path)) if arg == "SPEC" else arg for arg in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and f"Error: {message}" in result.output


def test_a_missing_optuna_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    result = CliRunner().invoke(main, ["tune", str(_spec(tmp_path)), "--synthetic", "64", "--trials", "1"])
    assert result.exit_code == 1
    assert result.output == ("kspec tune: error: kspec tune needs Optuna, which is not installed\n"
                             "  hint: install it with: pip install 'kspec[tune]'\n")


def test_a_spec_without_search_is_refused(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text(SPEC.split("search:")[0].replace("EPOCHS", "1"))
    result = CliRunner().invoke(main, ["tune", str(path), "--synthetic", "64", "--trials", "1"])
    assert result.exit_code == 1
    assert result.output.startswith("plain.yaml: error: the spec has no values to search\n")


def test_an_unknown_storage_scheme_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["tune", str(_spec(tmp_path)), "--synthetic", "64", "--trials", "1",
                                       "--out", str(tmp_path / "study"), "--storage", "redis://localhost/0"])
    assert result.exit_code == 1
    assert result.output == ("--storage: error: kspec tune cannot store a study at 'redis://'\n"
                             "  hint: give a sqlite://, postgresql:// or mysql:// URL, or the path of a journal file\n")


# ---------------------------------------------------------------- searches
def _val_loss_of_the_spec_itself(spec: Path, tmp_path: Path) -> float:
    run = tmp_path / "own"
    subprocess.run(_kspec("train", str(spec), "--synthetic", "64", "--seed", "0", "--out", str(run), "-q"),
                   cwd=ROOT, check=True, capture_output=True, timeout=TIMEOUT)
    rows = (run / "history.csv").read_text().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    return float(last[header.index("val_loss")])


@pytest.mark.slow
def test_a_search_beats_the_spec_and_best_yaml_rebuilds_the_best_model(tmp_path):
    spec = _spec(tmp_path)
    folder = tmp_path / "study"
    lines: list[str] = []
    study, _ = tune(spec, (), TuneOptions(synthetic_n=64, trials=3, out=folder, prune_after=10), progress=lines.append)
    assert _states(study) == ["COMPLETE"] * 3
    own = _val_loss_of_the_spec_itself(spec, tmp_path)
    best = study.best_trial
    assert best.value < 0.8 * own, (best.value, own)  # the same seed and rows: only the learning rate differs
    assert 0.003 <= best.params["optimizer.Adam.learning_rate"] <= 0.1

    result = report(study, folder)
    assert result.best_model == folder / "trials" / f"trial-{best.number:04d}" / "model.keras"
    assert result.table.splitlines()[0] == ("| trial | optimizer.Adam.learning_rate | val_loss | state | epochs "
                                            "| seconds |")
    assert f"| {best.number} | " in result.table and "complete (best)" in result.table
    assert {p.name for p in result.pictures} == {"trials.png"}  # importances need two searched values
    text = result.best_yaml.read_text()
    assert "search:" not in text and "objective:" not in text
    assert f"learning_rate: {best.params['optimizer.Adam.learning_rate']!r}" in text

    # best.yaml is a valid spec that builds the best trial's model: same layers, same outputs with its weights.
    from kspec.build import build
    from kspec.spec import read_spec
    import keras

    built = build(read_spec(result.best_yaml)[0]).model
    trained = keras.saving.load_model(result.best_model)
    assert [type(layer).__name__ for layer in built.layers] == [type(layer).__name__ for layer in trained.layers]
    assert float(built.optimizer.learning_rate) == pytest.approx(best.params["optimizer.Adam.learning_rate"])
    built.set_weights(trained.get_weights())
    x = np.random.default_rng(1).random((5, 8), dtype="float32")
    np.testing.assert_allclose(built.predict(x, verbose=0), trained.predict(x, verbose=0), rtol=1e-6)

    shown = CliRunner().invoke(main, ["tune", "--show", str(folder)])
    assert shown.exit_code == 0 and result.table in shown.output


@pytest.mark.slow
def test_pruning_stops_a_hopeless_trial_early(tmp_path):
    spec = _spec(tmp_path, epochs=3)
    folder = tmp_path / "study"
    folder.mkdir()
    # Two good rates first, then a hopeless one: the median pruner compares it with them after its first epoch.
    study = optuna.create_study(study_name="tiny", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / "study.journal"))))
    for rate in (0.05, 0.03, 0.003):
        study.enqueue_trial({"optimizer.Adam.learning_rate": rate})
    study, _ = tune(spec, (), TuneOptions(synthetic_n=64, trials=3, out=folder, prune_after=2), progress=print)
    assert _states(study) == ["COMPLETE", "COMPLETE", "PRUNED"]
    pruned = study.trials[2]
    assert pruned.user_attrs["epochs"] == 1 and list(pruned.intermediate_values) == [0]
    history = (folder / "trials" / "trial-0002" / "history.csv").read_text().splitlines()
    assert len(history) == 2  # a header and one epoch: the run stopped there, its folder whole
    run = json.loads((folder / "trials" / "trial-0002" / "run.json").read_text())
    assert (run["status"], run["stopped"]) == ("stopped", "kspec tune's median pruner stopped the trial after epoch 1")


@pytest.mark.slow
def test_a_trial_that_cannot_train_fails_and_the_study_goes_on(tmp_path):
    # Only Keras knows that a Dense of 0 units cannot be built: validate lets the choice through.
    spec = _spec(tmp_path, extra="  edges.hidden.units: {choice: [0, 4]}\n")
    folder = tmp_path / "study"
    folder.mkdir()
    study = optuna.create_study(study_name="tiny", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / "study.journal"))))
    for units in (0, 4):
        study.enqueue_trial({"optimizer.Adam.learning_rate": 0.01, "edges.hidden.units": units})
    lines: list[str] = []
    study, _ = tune(spec, (), TuneOptions(synthetic_n=64, trials=2, out=folder),
                    progress=lines.append)
    assert _states(study) == ["FAIL", "COMPLETE"], [t.params for t in study.trials]
    assert study.trials[0].user_attrs["failure"] == ("Keras rejected Dense 'hidden': Received an invalid value for "
                                                     "`units`, expected a positive integer. Received: units=0")
    assert lines[0].startswith("trial 0 fail: optimizer.Adam.learning_rate=0.01, edges.hidden.units=0; ")


@pytest.mark.slow
def test_two_workers_on_one_journal_run_every_trial_once(tmp_path):
    spec = _spec(tmp_path)
    folder = tmp_path / "study"
    done = subprocess.run(_kspec("tune", str(spec), "--synthetic", "64", "--trials", "4", "--workers", "2",
                                 "--out", str(folder), "--prune-after", "10"),
                          cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    study = _journal(folder)
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert _states(study) == ["COMPLETE"] * 4
    assert len({t.user_attrs["pid"] for t in study.trials}) == 2  # both workers took trials
    assert sorted(p.name for p in (folder / "trials").iterdir()) == [f"trial-000{n}" for n in range(4)]
    assert (folder / "best.yaml").is_file() and "| 3 |" in done.stdout


@pytest.mark.slow
def test_a_choice_of_layers_is_tried_and_written_into_best_yaml(tmp_path):
    spec = _spec(tmp_path, extra="  edges.hidden: {choice: [{Dense: {units: 4}}, {GaussianNoise: {stddev: 0.1}}]}\n")
    folder = tmp_path / "study"
    study, _ = tune(spec, (), TuneOptions(synthetic_n=64, trials=2, out=folder), progress=print)
    labels = {trial.params["edges.hidden"] for trial in study.trials}
    assert labels <= {"{Dense: {units: 4}}", "{GaussianNoise: {stddev: 0.1}}"}
    best = report(study, folder)
    chosen = study.best_trial.params["edges.hidden"]
    from kspec.spec import read_spec

    model_def, _ = read_spec(best.best_yaml)
    assert model_def.edges[0].layer.class_name == chosen.split(":")[0].strip("{")  # the layer chosen, built as such


def _wait_for_running_trial(folder: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        # A trial is RUNNING from Optuna's ask; it names its process a moment later, in the objective.
        if (folder / "study.journal").is_file() and any(t.state.name == "RUNNING" and "pid" in t.user_attrs
                                                        for t in _journal(folder).trials):
            return
        time.sleep(0.5)
    raise AssertionError("the worker never started a trial")


@pytest.mark.slow
def test_a_killed_worker_leaves_a_study_that_goes_on(tmp_path):
    spec = _spec(tmp_path)
    folder = tmp_path / "study"
    worker = subprocess.Popen(_kspec("tune", str(spec), "--synthetic", "64", "--trials", "3", "--out", str(folder)),
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_running_trial(folder, worker)
    finally:
        worker.send_signal(signal.SIGKILL)  # no safe point: the trial stays RUNNING in the journal
        worker.wait(timeout=60)
    assert _states(_journal(folder))[-1] == "RUNNING"
    lines: list[str] = []
    study, _ = tune(spec, (), TuneOptions(synthetic_n=64, trials=1, out=folder, prune_after=10), progress=lines.append)
    killed = len(study.trials) - 2
    assert f"trial {killed} was left running by a worker that ended; marked failed" in lines
    assert _states(study)[killed:] == ["FAIL", "COMPLETE"]
    assert study.trials[killed].user_attrs["failure"] == "its worker process ended during the trial"


@pytest.mark.slow
def test_ctrl_c_stops_every_worker_and_leaves_no_trial_running(tmp_path):
    spec = _spec(tmp_path, epochs=200)  # long trials: the signal comes in the middle of one
    folder = tmp_path / "study"
    command = subprocess.Popen(_kspec("tune", str(spec), "--synthetic", "64", "--trials", "4", "--workers", "2",
                                      "--out", str(folder)), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        _wait_for_running_trial(folder, command)
        command.send_signal(signal.SIGINT)  # as Ctrl-C in a terminal: to the command, which tells its workers
        out, err = command.communicate(timeout=TIMEOUT)
    finally:
        if command.poll() is None:
            command.kill()
    assert command.returncode == 130, err
    assert "tuning interrupted; every worker stopped after its current batch" in err
    states = _states(_journal(folder))
    assert "RUNNING" not in states and "FAIL" in states, states


# ---------------------------------------------------------------- PostgreSQL
def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.mark.slow
def test_two_workers_share_a_study_in_postgresql(tmp_path):
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL's server binaries (initdb, pg_ctl) are not installed; .ci/run installs "
                    "Debian's postgresql package")
    if os.geteuid() != 0 or not shutil.which("runuser") or not shutil.which("unshare"):
        pytest.skip("the PostgreSQL test runs the server as the 'postgres' user inside `unshare -n`, "
                    "which needs root (as .ci/run has)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg, the PostgreSQL driver, is not installed (pip install 'kspec[tune]')")
    spec = _spec(tmp_path)
    data = Path(tempfile.mkdtemp(prefix="kspec-pg-"))  # the server's user must reach it: not under pytest's tmp
    shutil.chown(data, "postgres")
    folder = tmp_path / "study"
    url = "postgresql://postgres@127.0.0.1:55432/postgres"
    as_postgres = "runuser -u postgres --"
    script = "; ".join([
        "set -e", "ip link set lo up",
        f"{as_postgres} {bin_dir}/initdb -D {data}/db -A trust -U postgres >{data}/initdb.log",
        f"{as_postgres} {bin_dir}/pg_ctl -D {data}/db -l {data}/server.log -w -t 60 "
        f"-o '-h 127.0.0.1 -p 55432 -k {data}' start >/dev/null",
        f"trap '{as_postgres} {bin_dir}/pg_ctl -D {data}/db -m fast stop >/dev/null' EXIT",
        "timeout {t} {cmd}".format(t=TIMEOUT, cmd=" ".join(_kspec(
            "tune", str(spec), "--synthetic", "64", "--trials", "4", "--workers", "2", "--out", str(folder),
            "--storage", url, "--prune-after", "10"))),
        # The study as the server holds it, read back inside the namespace.
        f"{sys.executable} -c \"import optuna; s = optuna.load_study(study_name='tiny', storage='{url}'); "
        f"print(sorted((t.number, t.state.name) for t in s.trials))\" > {folder}/trials.txt",
    ])
    try:
        done = subprocess.run(["unshare", "-n", "bash", "-c", script], cwd=ROOT, capture_output=True, text=True,
                              timeout=TIMEOUT + 60)
        assert done.returncode == 0, done.stderr[-3000:]
        assert (folder / "trials.txt").read_text().strip() == str([(n, "COMPLETE") for n in range(4)])
        assert "| 3 |" in done.stdout and (folder / "best.yaml").is_file()
    finally:
        shutil.rmtree(data, ignore_errors=True)
