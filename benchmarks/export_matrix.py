"""Which formats `kspec export` writes for each shipped spec, measured: a JSON of results and docs/export.md's table.

    python benchmarks/export_matrix.py                       # every spec in specs/ x every format
    python benchmarks/export_matrix.py --only mlp,digits_cnn --formats litert
    python benchmarks/export_matrix.py --write-docs          # only regenerate the table from the JSON

Each spec is built with fresh weights (its `adapt: true` layers adapted to
kspec's synthetic rows, as `kspec check` does), saved as .keras, and
exported to each format with the parity check on synthetic rows. The
result, passed or the first line of kspec's error, goes to
benchmarks/export_matrix.json (merged with earlier results of other specs
and formats); docs/export.md's table between its markers is generated from
that file. tests/test_export.py holds the table to the JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "export_matrix.json"
DOCS = ROOT / "docs" / "export.md"
BEGIN, END = "<!-- export-matrix: begin -->", "<!-- export-matrix: end -->"
sys.path.insert(0, str(ROOT))


def export_one(spec_path: Path, fmt: str, folder: Path) -> dict[str, object]:
    """Export one spec to one format; the outcome as a JSON-able row."""
    from kspec.adapt import adapt_synthetic
    from kspec.build import build
    from kspec.errors import KspecError
    from kspec.export import export
    from kspec.files import save_model
    from kspec.spec import read_spec

    spec, _ = read_spec(spec_path, ())
    weights = folder / f"{spec_path.stem}.keras"
    if not weights.exists():
        save_model(adapt_synthetic(build(spec), 64, None).model, weights)
    output = folder / (f"{spec_path.stem}_{fmt}" + {"saved_model": "", "onnx": ".onnx", "litert": ".tflite"}[fmt])
    started = time.perf_counter()
    try:
        result = export(spec, weights, fmt, output)
    except KspecError as exc:
        first = exc.diagnostics[0]
        return {"passed": False, "seconds": round(time.perf_counter() - started, 1), "error": first.message}
    worst = max(d.absolute for d in result.differences)
    return {"passed": True, "seconds": round(time.perf_counter() - started, 1), "largest_difference": worst}


def table(results: dict[str, dict[str, dict[str, object]]]) -> str:
    """The Markdown table: a row per spec, a column per format."""
    from kspec.export import FORMATS

    lines = ["| spec | " + " | ".join(FORMATS) + " |", "|---" * (len(FORMATS) + 1) + "|"]
    for spec in sorted(results):
        cells = []
        for fmt in FORMATS:
            row = results[spec].get(fmt)
            if row is None:
                cells.append("not measured")
            elif row["passed"] is None:
                cells.append("not measured: " + str(row["note"]))
            elif row["passed"]:
                cells.append(f"yes ({row['largest_difference']:.1g})")
            else:
                cells.append("no: " + str(row["error"]).replace("|", "\\|"))
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def layer_classes(spec: object) -> dict[str, str]:
    """Each Keras layer name the spec creates, with its class, sub-models included."""
    found = {name: layer.class_name for name, layer in spec.layers.items()}
    found |= {name: layer.class_name for name, layer in spec.sequence}
    found |= {name: edge.layer.class_name for edge in spec.edges if edge.layer for name in edge.layer_names()}
    for sub in spec.models.values():
        found |= layer_classes(sub)
    return found


def class_table(results: dict[str, dict[str, dict[str, object]]]) -> str:
    """A row per layer class the shipped specs use: yes where a spec using it exported, no where one failed at it.

    A class in no exported spec and blamed by no error is "not measured".
    """
    from kspec.export import FORMATS
    from kspec.spec import read_spec

    classes = {name: layer_classes(read_spec(ROOT / "specs" / f"{name}.yaml", ())[0]) for name in results}
    verdicts: dict[str, dict[str, set[str]]] = {}
    for spec, rows in results.items():
        for fmt, row in rows.items():
            blamed = re.search(r"layer '([\w.-]+)'", str(row.get("error", "")))
            for layer, cls in classes[spec].items():
                cell = verdicts.setdefault(cls, {}).setdefault(fmt, set())
                if row["passed"]:
                    cell.add("yes")
                elif blamed and blamed.group(1) == layer:
                    cell.add(f"no ({spec})")
    lines = ["| layer class | " + " | ".join(FORMATS) + " |", "|---" * (len(FORMATS) + 1) + "|"]
    for cls in sorted(verdicts):
        cells = [", ".join(sorted(verdicts[cls].get(fmt) or {"not measured"})) for fmt in FORMATS]
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rendered(results: dict[str, dict[str, dict[str, object]]]) -> str:
    """What goes between the markers in docs/export.md."""
    return f"{BEGIN}\n{table(results)}\n\nBy layer class:\n\n{class_table(results)}\n{END}"


def write_docs(results: dict[str, dict[str, dict[str, object]]]) -> None:
    text = DOCS.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{rendered(results)}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated spec names (default: every spec in specs/)")
    parser.add_argument("--formats", default="saved_model,onnx,litert")
    parser.add_argument("--write-docs", action="store_true", help="only regenerate docs/export.md's table")
    parser.add_argument("--not-measured", metavar="SPEC:FORMAT=WHY", action="append", default=[],
                        help="record an export that could not be measured here, and why")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for entry in args.not_measured:
        where, why = entry.split("=", 1)
        spec, fmt = where.split(":")
        results.setdefault(spec, {})[fmt] = {"passed": None, "note": why}
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    if not args.write_docs:
        from kspec.backend import import_keras, select_backend

        select_backend(None)
        specs = sorted((ROOT / "specs").glob("*.yaml"))
        if args.only:
            specs = [path for path in specs if path.stem in args.only.split(",")]
        with tempfile.TemporaryDirectory() as folder:
            for path in specs:
                for fmt in args.formats.split(","):
                    row = export_one(path, fmt, Path(folder))
                    print(path.stem, fmt, row, flush=True)
                    results.setdefault(path.stem, {})[fmt] = row
                    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
                    import_keras().backend.clear_session()
    write_docs(results)


if __name__ == "__main__":
    main()
