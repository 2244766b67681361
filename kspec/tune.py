"""`kspec tune`: search the values a spec's `search:` names, with Optuna; each trial a kspec training run.

A study lives in a study folder: Optuna's journal file (the embedded default,
nothing to start), study.json (which study and storage it is), and trials/,
one run folder per trial as `kspec train` writes it. Several processes, on
one host (`--workers K`) or many (`--storage URL` on each), work on one
study together: each asks Optuna's storage for its next trial. A trial
reports its objective every epoch, and Optuna's median pruner stops hopeless
ones. A process that dies leaves its trial running in the storage; the next
command on its host marks it failed (the process is gone), and an RDB
storage's heartbeat does so from any host. Ctrl-C stops every local worker
after its current batch. kspec.tune_report draws up the results.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import DataError, Diagnostic, Interrupted, Location, RunError, SpecError, fail
from .spec.search import choice_label

STUDY_FILE = "study.json"  # in the study folder: the study's name and storage, for --show and for workers
JOURNAL = "study.journal"  # the embedded storage: Optuna's journal file
RDB_SCHEMES = ("sqlite", "postgresql", "mysql")
HEARTBEAT_SECONDS = 10  # an RDB storage's trials beat this often; a trial silent for 3 beats has failed
INSTALL_HINT = "install it with: pip install 'kspec[tune]'"


@dataclass(frozen=True)
class TuneOptions:
    """A `kspec tune` command's options, as given (None: not given)."""

    data: Path | None = None
    synthetic_n: int | None = None
    trials: int | None = None  # this command's trials, across its workers
    timeout: float | None = None  # seconds; each worker stops starting trials after it
    out: Path | None = None  # the study folder (default: studies/NAME)
    storage: str | None = None  # an RDB URL or a journal file (default: the study folder's journal)
    study: str | None = None  # the study's name (default: the spec's model name)
    workers: int = 1
    seed: int = 0  # every trial trains with this seed, so trials differ by their values only
    prune_after: int = 5  # trials to finish before the median pruner stops any
    worker_index: int | None = None  # set in a worker that a `--workers K` command started
    max_params: int = 1_000_000_000

    def usage_problem(self) -> str | None:
        if (self.data is None) == (self.synthetic_n is None):
            return "give exactly one of --data FILE and --synthetic N"
        if self.trials is None and self.timeout is None:
            return "give --trials N (or --timeout SECONDS, or both)"
        return None


def import_optuna() -> Any:
    """Optuna, an optional extra, quiet; a located error naming the extra when it is missing."""
    try:
        import optuna
    except ImportError:
        raise fail(RunError, "kspec tune", "kspec tune needs Optuna, which is not installed", INSTALL_HINT) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# ------------------------------------------------------------------ storage
def open_storage(optuna: Any, storage: str | None, folder: Path) -> Any:
    """The Optuna storage a study lives in: an RDB URL, a journal file, or the study folder's journal."""
    if storage is None:
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / JOURNAL)))
    scheme = storage.partition("://")[0].partition("+")[0] if "://" in storage else None
    if scheme is None:
        path = Path(storage)
        if not path.parent.is_dir():
            raise fail(RunError, "--storage", f"the folder of the journal file '{storage}' does not exist",
                       "create it, or give an RDB URL such as postgresql://USER@HOST/DB")
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    if scheme not in RDB_SCHEMES:
        raise fail(RunError, "--storage", f"kspec tune cannot store a study at '{scheme}://'",
                   "give a sqlite://, postgresql:// or mysql:// URL, or the path of a journal file")
    try:
        with warnings.catch_warnings():  # Optuna calls its heartbeat experimental; kspec relies on it here
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(storage, heartbeat_interval=HEARTBEAT_SECONDS,
                                              grace_period=3 * HEARTBEAT_SECONDS)
    except ImportError as exc:  # the database's driver (psycopg2, PyMySQL) is an extra of its own
        raise fail(RunError, "--storage", f"the {scheme} storage needs a driver that is not installed: {exc}",
                   "pip install 'kspec[tune]' brings psycopg for PostgreSQL; for MySQL, pip install PyMySQL "
                   "and use mysql+pymysql://") from None
    except Exception as exc:  # SQLAlchemy's errors: an unreachable server, a refused login
        raise fail(RunError, "--storage", f"cannot open the study's storage: {_first_line(exc)}",
                   "check the URL, and that the database server is running and reachable") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def shown_storage(storage: str | None) -> str | None:
    """The storage as study.json records it: a journal file's absolute path (for --show from anywhere), a URL
    without a password (a URL with one is not recorded: give it to --show again)."""
    if storage is None:
        return None
    if "://" not in storage:
        return str(Path(storage).absolute())
    from urllib.parse import urlsplit

    parts = urlsplit(storage)
    return None if parts.password else storage


def record_study(folder: Path, name: str, storage: str | None) -> None:
    from .files import write_text

    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / STUDY_FILE, json.dumps({"study": name, "storage": shown_storage(storage)}, indent=2) + "\n")


def read_study_file(folder: Path) -> dict[str, Any]:
    path = folder / STUDY_FILE
    if not path.is_file():
        raise fail(RunError, str(folder), "not a study folder: it has no study.json",
                   "give the --out folder of a `kspec tune` run (default: studies/NAME)")
    try:
        with open(path, "rb") as handle:  # a few hundred bytes when kspec wrote it: read no more than 64 KiB
            record = json.loads(handle.read(65536).decode("utf-8"))
    except (OSError, ValueError):
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("study"), str):
        raise fail(RunError, str(path), "study.json is damaged", "it is written by kspec tune; run the study again")
    return record


def load_study(optuna: Any, folder: Path, storage: str | None) -> tuple[Any, Any]:
    """The study of a study folder, and its storage (for --show)."""
    record = read_study_file(folder)
    url = storage or record.get("storage")
    store = open_storage(optuna, url, folder)
    try:
        return optuna.load_study(study_name=record["study"], storage=store), store
    except KeyError:
        raise fail(RunError, str(folder), f"the storage holds no study '{record['study']}'",
                   "give the --storage URL the study was run with") from None


def create_study(optuna: Any, store: Any, name: str, search: Any, options: TuneOptions, base: dict[str, Any]) -> Any:
    """Create the study, or load it to continue; refuse one that optimises the other way."""
    # A study of this host's processes draws reproducibly (each worker its own seed); one shared through
    # --storage, maybe with other hosts that have the same --seed, draws at random so that none repeats another.
    seed = options.seed + (options.worker_index or 0) if options.storage is None else None
    study = optuna.create_study(
        storage=store, study_name=name, direction=search.direction, load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=options.prune_after, n_warmup_steps=0))
    if study.direction.name.lower() != search.direction:
        raise fail(SpecError, search.loc or "objective", f"study '{name}' {study.direction.name.lower()}s its "
                   f"objective, and the spec asks to {search.direction} it",
                   "give another --study name, or the spec's direction")
    known = study.user_attrs.get("objective")
    if known is None:
        for key, value in base.items():
            study.set_user_attr(key, value)
    elif known != search.metric:
        raise fail(SpecError, search.loc or "objective", f"study '{name}' optimises '{known}', and the spec "
                   f"'{search.metric}'", "give another --study name to start a new study")
    return study


def fail_dead_trials(optuna: Any, study: Any, store: Any) -> list[int]:
    """Mark failed the running trials of this host whose process is gone; their numbers."""
    with warnings.catch_warnings():  # experimental in Optuna's eyes, like the heartbeat itself
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # an RDB heartbeat's verdict, for trials of every host
    host, failed = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") == host and isinstance(pid, int) and not _alive(pid):
            store.set_trial_user_attr(trial._trial_id, "failure", "its worker process ended during the trial")
            store.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            failed.append(trial.number)
    return failed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A child that ended but was not waited for is a zombie: gone for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


# ------------------------------------------------------------------- trials
def trial_values(trial: Any, search: Any) -> dict[str, Any]:
    """The trial's value of each searched path, drawn from its distribution."""
    values = {}
    for param in search.params:
        if param.kind == "int":
            values[param.path] = trial.suggest_int(param.path, int(param.low), int(param.high),
                                                   step=int(param.step or 1), log=param.log)
        elif param.kind == "float":
            values[param.path] = trial.suggest_float(param.path, float(param.low), float(param.high),
                                                     step=param.step, log=param.log)
        else:  # Optuna holds a mapping or list choice as its YAML text
            labels = [choice_label(choice) for choice in param.choices]
            values[param.path] = param.choices[labels.index(trial.suggest_categorical(param.path, labels))]
    return values


def pruning_callback(keras: Any, optuna: Any, trial: Any, metric: str) -> Any:
    """A Keras callback that reports the objective each epoch and stops the run when the pruner says so."""
    class ReportAndPrune(keras.callbacks.Callback):
        pruned_after: int | None = None

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            value = (logs or {}).get(metric)
            if value is None:
                return
            trial.report(float(value), epoch)
            if trial.should_prune():
                self.pruned_after = epoch + 1
                self.model.stop_training = True  # fit ends after this epoch; the run folder is kept whole

    return ReportAndPrune()


def _objective_value(history: list[dict[str, float]], metric: str) -> float:
    if not history or metric not in history[-1]:
        reported = ", ".join(key for key in (history[-1] if history else {}) if key != "epoch")
        raise fail(RunError, "objective", f"the trial's training did not report '{metric}'",
                   f"it reported: {reported or 'nothing'}")
    return float(history[-1][metric])


@dataclass
class _Worker:
    """What every trial of one process shares."""

    optuna: Any
    keras: Any
    spec: Path
    overrides: tuple[str, ...]
    options: TuneOptions
    folder: Path
    search: Any
    stop: Any  # kspec.signals.StopFlag
    progress: Callable[[str], None]

    def objective(self, trial: Any) -> float:
        from .spec import read_spec, spec_text
        from .spec.search import assignment
        from .train import train
        from .train_options import TrainOptions

        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        values = trial_values(trial, self.search)
        assignments = [assignment(path, value) for path, value in values.items()]
        trial.set_user_attr("set", assignments)  # for best.yaml, as --set gives them
        overrides = self.overrides + tuple(assignments)
        run_dir = self.folder / "trials" / f"trial-{trial.number:04d}"
        trial.set_user_attr("run", str(run_dir))
        try:
            model_def, _ = read_spec(self.spec, overrides)
            callback = pruning_callback(self.keras, self.optuna, trial, self.search.metric)
            options = TrainOptions(data=self.options.data, synthetic_n=self.options.synthetic_n, out=run_dir,
                                   seed=self.options.seed, max_params=self.options.max_params)
            result = train(model_def, spec_text(self.spec, overrides), options, verbose=0, stop=self.stop,
                           progress=self.progress, callbacks=(callback,))
        except (SpecError, DataError, RunError) as exc:  # the trial's values did not train: it fails, the study goes on
            trial.set_user_attr("failure", exc.diagnostics[0].message if exc.diagnostics else str(exc))
            raise
        finally:
            self.keras.backend.clear_session()  # each trial's model and graph go with it
        trial.set_user_attr("epochs", result.epochs_completed)
        if callback.pruned_after is not None:
            _record_pruned(run_dir, callback.pruned_after)
            raise self.optuna.TrialPruned(f"pruned after epoch {callback.pruned_after}")
        return _objective_value(result.history, self.search.metric)

    def after_trial(self, study: Any, trial: Any) -> None:
        values = ", ".join(f"{path}={_short(value)}" for path, value in trial.params.items())
        result = (f"{self.search.metric} {trial.value:.4g}" if trial.value is not None
                  else trial.user_attrs.get("failure") or "")
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        self.progress(f"trial {trial.number} {trial.state.name.lower()}: {values}; {result} ({seconds:.1f}s)")
        if self.stop.signal is not None:
            study.stop()


def _record_pruned(run_dir: Path, epoch: int) -> None:
    """Say in the run's run.json that the pruner stopped it, as a callback's stop is said."""
    from .run_folder import RunFolder

    folder = RunFolder.open(run_dir)
    settings = folder.settings()
    settings.status, settings.stopped = "stopped", f"kspec tune's median pruner stopped the trial after epoch {epoch}"
    folder.save_settings(settings)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def run_worker(spec: Path, overrides: tuple[str, ...], options: TuneOptions, backend: str | None,
               progress: Callable[[str], None], search: Any, name: str, folder: Path) -> Any:
    """Run this process's trials of the study; the study."""
    from .backend import import_keras
    from .signals import StopFlag

    optuna = import_optuna()
    if options.worker_index is None:  # a worker's folder is its command's, which records it
        record_study(folder, name, options.storage)
    store = open_storage(optuna, options.storage, folder)
    study = create_study(optuna, store, name, search, options, _study_attrs(spec, overrides, search))
    for number in fail_dead_trials(optuna, study, store):
        progress(f"trial {number} was left running by a worker that ended; marked failed")
    with StopFlag() as stop:
        keras = import_keras()
        worker = _Worker(optuna, keras, spec, overrides, options, folder, search, stop, progress)
        try:
            study.optimize(worker.objective, n_trials=options.trials, timeout=options.timeout,
                           catch=(SpecError, DataError, RunError), callbacks=[worker.after_trial],
                           gc_after_trial=True)
        except Interrupted as exc:
            raise Interrupted([Diagnostic(Location(str(folder)), "tuning interrupted; the trial that was training "
                                          "is marked failed, the others are kept",
                                          _continue_hint(folder))]) from exc
    return study


def _continue_hint(folder: Path) -> str:
    return f"run the same command to continue the study (its folder: {folder})"


def _study_attrs(spec: Path, overrides: tuple[str, ...], search: Any) -> dict[str, Any]:
    """What the study records of its spec, so that --show can write best.yaml without it."""
    return {"spec": str(spec), "spec_text": spec.read_text(encoding="utf-8"), "overrides": list(overrides),
            "objective": search.metric}


def prepare(spec: Path, overrides: Sequence[str], options: TuneOptions) -> tuple[Any, str, Path]:
    """The spec's search (refused when there is none), the study's name and its folder."""
    from .spec import read_spec

    model_def, _ = read_spec(spec, overrides)
    search = model_def.search
    if search is None or not search.params:
        raise fail(SpecError, spec.name if search is None else search.loc, "the spec has no values to search",
                   "add e.g. 'search: {optimizer.Adam.learning_rate: {float: [0.0001, 0.01], log: true}}' "
                   "(see docs/spec.md, Search)")
    if model_def.compile is None or model_def.compile.loss is None:
        raise fail(RunError, spec.name, "the spec has no 'loss', so it cannot be trained or tuned",
                   "add e.g. 'loss: binary_crossentropy' (and an 'optimizer') to the spec")
    name = options.study or model_def.name
    folder = options.out or Path("studies") / name
    return search, name, folder


# ------------------------------------------------------------------ workers
def worker_command(spec: Path, overrides: Sequence[str], options: TuneOptions, backend: str | None,
                   index: int, trials: int | None) -> list[str]:
    """The command line of one local worker: this command, for its share of the trials, on the same storage."""
    command = [sys.executable, "-m", "kspec", "tune", str(spec), "--out", str(options.out),
               "--study", str(options.study), "--seed", str(options.seed),
               "--prune-after", str(options.prune_after), "--worker-index", str(index),
               "--max-params", str(options.max_params)]
    command += ["--data", str(options.data)] if options.data is not None else ["--synthetic", str(options.synthetic_n)]
    if trials is not None:
        command += ["--trials", str(trials)]
    if options.timeout is not None:
        command += ["--timeout", str(options.timeout)]
    if options.storage is not None:  # else the study folder's journal, as here
        command += ["--storage", options.storage]
    if backend is not None:
        command += ["--backend", backend]
    for item in overrides:
        command += ["--set", item]
    return command


def shares(trials: int | None, workers: int) -> list[int | None]:
    """Each worker's trials: N split as evenly as it goes (None: until the timeout)."""
    if trials is None:
        return [None] * workers
    return [trials // workers + (index < trials % workers) for index in range(min(workers, trials))]


def run_workers(spec: Path, overrides: tuple[str, ...], options: TuneOptions, backend: str | None,
                progress: Callable[[str], None], search: Any, name: str, folder: Path) -> Any:
    """Start K local workers on one storage, wait for them, and mark failed what a dead one left running."""
    optuna = import_optuna()
    options = replace(options, out=folder, study=name)
    record_study(folder, name, options.storage)
    store = open_storage(optuna, options.storage, folder)
    study = create_study(optuna, store, name, search, options, _study_attrs(spec, overrides, search))
    commands = [worker_command(spec, overrides, options, backend, index, trials)
                for index, trials in enumerate(shares(options.trials, options.workers))]
    # Own sessions: a terminal's Ctrl-C reaches this process alone, which passes it on once to each.
    children = [subprocess.Popen(command, start_new_session=True) for command in commands]
    progress(f"started {len(children)} workers on study '{name}': pids {', '.join(str(c.pid) for c in children)}")
    interrupted: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        interrupted.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT if len(interrupted) == 1 else signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [child.wait() for child in children]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for number in fail_dead_trials(optuna, study, store):
        progress(f"trial {number} was left running by a worker that ended; marked failed")
    failed = [(child.pid, code) for child, code in zip(children, codes) if code not in (0, 130)]
    for pid, code in failed:
        progress(f"worker {pid} exited with code {code}; the study is kept, run the command again to go on")
    if interrupted:
        raise Interrupted([Diagnostic(Location(str(folder)), "tuning interrupted; every worker stopped after its "
                                      "current batch, and their running trials are marked failed",
                                      _continue_hint(folder))])
    return study


def tune(spec: Path, overrides: tuple[str, ...], options: TuneOptions, backend: str | None = None,
         progress: Callable[[str], None] = print) -> tuple[Any, Path]:
    """Run the command's trials (in this process or in K workers); the study and its folder."""
    from .backend import select_backend

    started = time.monotonic()
    import_optuna()  # before anything else: a missing extra is the first thing said
    select_backend(backend)
    search, name, folder = prepare(spec, overrides, options)
    run = run_workers if options.workers > 1 and options.worker_index is None else run_worker
    study = run(spec, overrides, options, backend, progress, search, name, folder)
    progress(f"{len(study.trials)} trial(s) in study '{name}' ({time.monotonic() - started:.1f}s this run)")
    return study, folder
