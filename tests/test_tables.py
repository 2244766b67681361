"""CSV and Parquet tables (kspec.tables): columns to arrays, streamed row groups, training and predicting.

The arrays a table gives are compared with the same values stored in an .npz
(read by the reader every other test trusts); bad tables are in
tests/test_data_corpus.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import ROOT

from kspec.cli import main
from kspec.data import load_npz
from kspec.errors import DataError
from kspec.feed import shuffled
from kspec.spec import read_spec

# Scalar, vector ('columns:') and string inputs; a class output (sparse) and a regression output.
SPEC = """\
name: mixed
inputs:
  x: {shape: [3], columns: [c, a, b]}
  n: {shape: [1]}
  word: {shape: [1], dtype: string}
edges:
  ids: {StringLookup: {max_tokens: 5, output_mode: one_hot, pad_to_max_tokens: true}, in: word, adapt: true}
  both: {Concatenate: {}, in: [x, n, ids]}
  hidden: {Dense: {units: 4, activation: relu}}
  cls: {Dense: {units: 3, activation: softmax}, in: hidden}
  value: {Dense: {units: 1}, in: hidden}
outputs: [cls, value]
loss: {cls: sparse_categorical_crossentropy, value: mse}
optimizer: adam
"""
SHAPES = {"cls": (None, 3), "value": (None, 1)}
ROWS = 40


def _columns(rows: int = ROWS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"a": rng.random(rows), "b": rng.random(rows), "c": rng.integers(0, 9, rows), "n": rng.random(rows),
            "word": rng.choice(["cat", "dog", "owl"], rows), "cls": rng.integers(0, 3, rows),
            "value": rng.random(rows), "id": np.arange(100, 100 + rows)}


def _expected(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays the table should give, built by hand."""
    return {"x": np.stack([columns["c"], columns["a"], columns["b"]], axis=1).astype("float32"),
            "n": columns["n"].reshape(-1, 1).astype("float32"), "word": columns["word"].reshape(-1, 1),
            "cls": columns["cls"], "value": columns["value"].reshape(-1, 1).astype("float32")}


@pytest.fixture()
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.yaml"
    path.write_text(SPEC)
    return path


def _write(tmp_path: Path, columns: dict[str, np.ndarray], suffix: str, row_group: int = 16) -> Path:
    path = tmp_path / f"table{suffix}"
    table = pa.table(columns)
    if suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path, row_group_size=row_group)
    return path


@pytest.mark.parametrize("suffix, stream", [(".csv", None), (".csv", True), (".parquet", None), (".parquet", True)])
def test_a_table_gives_the_arrays_written_by_hand(tmp_path, spec_file, suffix, stream):
    columns = _columns()
    spec, _ = read_spec(spec_file)
    dataset = load_npz(_write(tmp_path, columns, suffix), spec, SHAPES, stream=stream)
    assert dataset.streamed == bool(stream)
    got = dataset.take(slice(0, ROWS))
    for name, array in _expected(columns).items():
        value = {**got.inputs, **got.targets}[name]
        assert value.shape == array.shape and value.dtype.kind == array.dtype.kind, name
        np.testing.assert_array_equal(value, array, err_msg=name)


def test_streamed_rows_cross_row_groups_and_windows(tmp_path, spec_file):
    columns = _columns()
    spec, _ = read_spec(spec_file)
    dataset = load_npz(_write(tmp_path, columns, ".parquet", row_group=7), spec, SHAPES, stream=True)
    window = dataset.window(5, 30)
    np.testing.assert_array_equal(window.take(slice(3, 20)).inputs["x"], _expected(columns)["x"][8:25])


def test_a_streamed_csv_names_the_csv_in_its_errors(tmp_path, spec_file):
    data = tmp_path / "t.csv"
    data.write_text("a,b,c,n,word,cls,value\n1,2,3,4,cat,0,1\n1,,3,4,cat,0,1\n")
    spec, _ = read_spec(spec_file)
    with pytest.raises(DataError) as info:
        load_npz(data, spec, SHAPES, stream=True)
    assert info.value.diagnostics[0].format() == (
        f"{data}: error: column 'b' has 1 missing value (first in row 1)\n"
        "  hint: fill them in the file, or give input 'x' a value for them in the spec ('fill: 0')")


def test_fill_puts_a_value_in_missing_cells(tmp_path):
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("name: f\ninputs:\n  n: {shape: [1], fill: -1}\n  word: {shape: [1], dtype: string, "
                         "fill: none}\nedges:\n  out: {Dense: {units: 1}, in: n}\noutputs: [out]\nloss: mse\n"
                         "optimizer: sgd\n")
    data = tmp_path / "t.csv"
    data.write_text("n,word,out\n1.5,cat,0\n,,1\n")
    spec, _ = read_spec(spec_file)
    dataset = load_npz(data, spec, {"out": (None, 1)})
    np.testing.assert_array_equal(dataset.inputs["n"], [[1.5], [-1.0]])
    np.testing.assert_array_equal(dataset.inputs["word"], [["cat"], ["none"]])


def test_block_shuffle_reads_each_row_group_together():
    order = shuffled(10, 4, 12, np.random.default_rng(1))  # 3 batches a row group, the last group 1 batch
    assert sorted(order.tolist()) == list(range(10))
    groups = [index * 4 // 12 for index in order]
    assert [g for i, g in enumerate(groups) if i == 0 or g != groups[i - 1]] == sorted(set(groups), key=groups.index)
    assert len(set(shuffled(10, 4, None, np.random.default_rng(1)).tolist())) == 10


@pytest.mark.parametrize("suffix, extra", [(".csv", []), (".parquet", ["--stream", "--validation-split", "0.25"])])
def test_trains_from_a_table(tmp_path, spec_file, suffix, extra):
    data = _write(tmp_path, _columns(), suffix)
    result = CliRunner().invoke(main, ["train", str(spec_file), "--data", str(data), "--epochs", "2",
                                       "--batch-size", "8", "--out", str(tmp_path / "run"), "-q", *extra])
    assert result.exit_code == 0, result.output
    assert "trained 2 epoch(s)" in result.output
    assert "adapted StringLookup 'ids'" in result.output + result.stderr


def test_predict_keeps_columns_in_csv_and_parquet(tmp_path):
    spec_file = tmp_path / "fixed.yaml"  # a vocabulary of its own: a freshly built model predicts
    spec_file.write_text(SPEC.replace("max_tokens: 5, output_mode: one_hot, pad_to_max_tokens: true}, in: word, "
                                      "adapt: true}", "vocabulary: [cat, dog, owl], output_mode: one_hot}, in: word}"))
    columns = _columns()
    data = _write(tmp_path, columns, ".parquet")
    model = tmp_path / "m.keras"
    assert CliRunner().invoke(main, ["build", str(spec_file), "-o", str(model)]).exit_code == 0
    for name in ("p.csv", "p.parquet"):
        out = tmp_path / name
        result = CliRunner().invoke(main, ["predict", str(spec_file), "--weights", str(model), "--data", str(data),
                                           "-o", str(out), "--keep-columns", "id,word", "--labels", "-q"])
        assert result.exit_code == 0, result.output
        table = pacsv.read_csv(out) if name.endswith(".csv") else pq.read_table(out)
        assert table.column_names == ["id", "word", "cls_0", "cls_1", "cls_2", "value", "cls_label"]
        assert table.column("id").to_pylist() == columns["id"].tolist()
        assert table.column("word").to_pylist() == columns["word"].tolist()


def test_a_missing_column_is_reported_before_tensorflow_is_imported(tmp_path, spec_file):
    data = tmp_path / "t.csv"
    data.write_text("a,b,n,word,cls,value\n1,2,3,cat,0,1\n")
    script = textwrap.dedent(f"""
        import sys
        from kspec.cli import main
        try:
            main(["train", {str(spec_file)!r}, "--data", {str(data)!r}, "--out", {str(tmp_path / 'run')!r}])
        except SystemExit as exc:
            print("exit", exc.code, "tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.stdout.strip() == "exit 1 False False"
    assert result.stderr == (f"{data}: error: no column 'c' for input 'x'\n"
                             "  hint: the table's columns: a, b, n, word, cls, value; list its columns in the spec "
                             "with 'columns:'\n")


STREAM_SCRIPT = """
import sys
import numpy as np
from kspec.data import load_npz
from kspec.spec import read_spec

import pyarrow.parquet as pq

spec, _ = read_spec(sys.argv[1])
pq.ParquetFile(sys.argv[2]).read_row_group(0)  # pyarrow's thread pools and allocator, which any reading costs once


def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024


with open("/proc/self/clear_refs", "w") as handle:  # ru_maxrss outlives exec: reset this process's own peak
    handle.write("5")
before = status("VmRSS")
dataset = load_npz(sys.argv[2], spec, {"y": (None, 1)}, stream=True)  # checks every row: one pass
total = 0.0
for start in range(0, len(dataset), 4096):  # a second pass, batch by batch, as training reads it
    total += float(dataset.take(slice(start, start + 4096)).inputs["x"].sum())
print(len(dataset), status("VmHWM") - before)
"""


@pytest.mark.slow
def test_a_parquet_file_larger_than_the_budget_streams_in_bounded_memory(tmp_path):
    # 17 float64 columns, 3.2 million rows: 435 MB of values in row groups of 50,000 rows (6.8 MB).
    spec_file = tmp_path / "s.yaml"
    names = [f"f{i}" for i in range(16)]
    spec_file.write_text(f"name: s\ninputs:\n  x: {{shape: [16], columns: [{', '.join(names)}]}}\nedges:\n"
                         "  y: {Dense: {units: 1}}\noutputs: [y]\nloss: mse\noptimizer: sgd\n")
    path = tmp_path / "big.parquet"
    rows, chunk = 3_200_000, 200_000
    rng = np.random.default_rng(0)
    schema = pa.schema([(name, pa.float64()) for name in [*names, "y"]])
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for _ in range(rows // chunk):
            writer.write_table(pa.table({name: rng.random(chunk) for name in [*names, "y"]}, schema=schema),
                               row_group_size=50_000)
    data_bytes = rows * 17 * 8
    budget = data_bytes // 4
    result = subprocess.run([sys.executable, "-c", STREAM_SCRIPT, str(spec_file), str(path)], capture_output=True,
                            text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    count, grown = map(int, result.stdout.split())
    assert count == rows
    assert grown < budget, f"peak RSS grew {grown:,} bytes reading {data_bytes:,} (budget {budget:,})"
