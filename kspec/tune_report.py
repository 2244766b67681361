"""What `kspec tune` leaves when it ends, and `kspec tune --show` redraws: a table of the study's
trials, best.yaml (the spec with the best trial's values written in), and two pictures.

best.yaml is made from the spec text the study recorded when it began, so it
can be written from any host that reaches the storage, and it holds no
`search:` or `objective:`: it is the spec to train, build or deploy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TABLE_ROWS = 200  # the table shows the best and the latest trials up to this many; the storage has them all


@dataclass(frozen=True)
class Report:
    table: str
    best_yaml: Path | None  # None when no trial completed
    best_model: Path | None
    pictures: tuple[Path, ...]


def report(study: Any, folder: Path) -> Report:
    """Write best.yaml and the pictures into the study folder; the table and what was written."""
    best = _best(study)
    best_yaml = best_model = None
    if best is not None:
        best_yaml = folder / "best.yaml"
        from .files import write_text

        write_text(best_yaml, best_spec(study, best))
        run = best.user_attrs.get("run")
        best_model = Path(run) / "model.keras" if isinstance(run, str) else None
    return Report(table(study), best_yaml, best_model, tuple(pictures(study, folder)))


def _best(study: Any) -> Any:
    complete = [t for t in study.trials if t.state.name == "COMPLETE" and t.value is not None
                and math.isfinite(t.value)]
    if not complete:
        return None
    pick = min if study.direction.name == "MINIMIZE" else max
    return pick(complete, key=lambda t: t.value)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def table(study: Any) -> str:
    """The study's trials as a Markdown table: number, each value, the objective, state, epochs, seconds."""
    metric = study.user_attrs.get("objective", "objective")
    trials = list(study.trials)
    if len(trials) > TABLE_ROWS:
        trials = trials[-TABLE_ROWS:]
    paths = list(dict.fromkeys(path for trial in trials for path in trial.params))
    best = _best(study)
    head = ["trial", *paths, metric, "state", "epochs", "seconds"]
    rows = [head, ["---"] * len(head)]
    for trial in trials:
        seconds = trial.duration.total_seconds() if trial.duration else None
        state = trial.state.name.lower() + (" (best)" if best is not None and trial.number == best.number else "")
        rows.append([str(trial.number), *(_cell(trial.params.get(path)) for path in paths), _cell(trial.value),
                     state, _cell(trial.user_attrs.get("epochs")), f"{seconds:.1f}" if seconds is not None else ""])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def best_spec(study: Any, best: Any) -> str:
    """The study's spec with the best trial's values written in, without `search:` and `objective:`."""
    from .spec.load import parse_text, to_python
    from .spec.overrides import apply_overrides
    from .spec.search import assignment

    attrs = study.user_attrs
    chosen = best.user_attrs.get("set") or [assignment(path, value) for path, value in best.params.items()]
    overrides = list(attrs.get("overrides", [])) + list(chosen)
    tree = apply_overrides(parse_text(attrs["spec_text"], attrs.get("spec", "spec")), overrides)
    for key in ("search", "objective"):
        tree.entries.pop(key, None)
    header = (f"# {attrs.get('spec', 'the spec')}, with the values of trial {best.number} of study "
              f"'{study.study_name}' ({attrs.get('objective', 'objective')} {best.value:.6g}):\n"
              + "".join(f"#   {item}\n" for item in overrides))
    return header + yaml.safe_dump(to_python(tree), sort_keys=False, allow_unicode=True, default_flow_style=None)


def pictures(study: Any, folder: Path) -> list[Path]:
    """trials.png (the objective of each trial, and the best so far) and importances.png; none without matplotlib."""
    from . import plot

    if not plot.available():
        return []
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    from .files import atomic_path

    drawn = []
    metric = study.user_attrs.get("objective", "objective")
    done = [t for t in study.trials if t.value is not None and math.isfinite(t.value)]
    pruned = [t for t in study.trials if t.state.name == "PRUNED" and t.intermediate_values]
    if done or pruned:
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.scatter([t.number for t in done], [t.value for t in done], label="completed")
        if pruned:
            last = [t.intermediate_values[max(t.intermediate_values)] for t in pruned]
            axes.scatter([t.number for t in pruned], last, marker="x", label="pruned (last epoch)")
        if done:
            pick = min if study.direction.name == "MINIMIZE" else max
            running = [pick(t.value for t in done if t.number <= n.number) for n in done]
            axes.step([t.number for t in done], running, where="post", color="black", label="best so far")
        axes.set(xlabel="trial", ylabel=metric, title=f"study {study.study_name}")
        axes.legend()
        drawn.append(_save(plt, figure, folder / "trials.png", atomic_path))
    importances = _importances(study)
    if importances:
        figure, axes = plt.subplots(figsize=(6, 1 + 0.5 * len(importances)))
        names = list(importances)[::-1]
        axes.barh(names, [importances[name] for name in names])
        axes.set(xlabel=f"importance for {metric} (fANOVA)", title=f"study {study.study_name}")
        figure.tight_layout()
        drawn.append(_save(plt, figure, folder / "importances.png", atomic_path))
    return drawn


def _save(plt: Any, figure: Any, path: Path, atomic_path: Any) -> Path:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)
    return path


def _importances(study: Any) -> dict[str, float]:
    """Optuna's parameter importances; none for fewer than two completed trials or a single value."""
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if len(complete) < 2 or len({path for t in complete for path in t.params}) < 2:
        return {}
    import optuna

    try:
        return optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):  # e.g. every trial drew the same value
        return {}
