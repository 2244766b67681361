"""The Parquet reader (kspec.tables) against the same arrays in memory and streamed from an .npz.

One table of FEATURES float32 columns and a float32 label, written three ways
(a Parquet file of row groups of GROUP_ROWS rows, uncompressed; an
uncompressed .npz; nothing, for arrays made in memory) and read by kspec's
data path as training reads it: `load_npz` (which checks every value, one
pass over the file), then every batch of BATCH rows in the row-group
shuffled order training uses (kspec.feed.shuffled). Each way runs in a
process of its own, which reports the check's and the batches' seconds and
its peak resident memory above what it held before reading (pyarrow's thread
pools and allocator warmed up first, as in tests/test_tables.py).

    python benchmarks/table_reader.py --rows 4000000 --json table_reader.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FEATURES = 16
BATCH = 256
GROUP_ROWS = 65_536
CHUNK = 262_144  # rows written at a time: the writer never holds the table
SPEC = f"""\
name: bench
inputs:
  x: {{shape: [{FEATURES}], columns: [{', '.join(f'f{i}' for i in range(FEATURES))}]}}
edges:
  y: {{Dense: {{units: 1}}}}
outputs: [y]
loss: mse
optimizer: sgd
"""

CHILD = """
import sys, time
import numpy as np
from pathlib import Path
from kspec.data import Dataset, load_npz
from kspec.feed import shuffled
from kspec.spec import read_spec

way, spec_path, data = sys.argv[1], sys.argv[2], Path(sys.argv[3])
spec, _ = read_spec(spec_path)
if way == "parquet":
    import pyarrow.parquet as pq
    pq.ParquetFile(data).read_row_group(0)  # warm-up, not counted
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

# ru_maxrss outlives exec (a child starts with its parent's peak): read this process's own peak, reset here.
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
rss = lambda: status("VmHWM")
before = status("VmRSS")
start = time.perf_counter()
if way == "memory":
    arrays = np.load(data)  # loaded whole: what in-memory training holds
    dataset = Dataset({"x": arrays["x"]}, {"y": arrays["y"]}, str(data))
else:
    dataset = load_npz(data, spec, {"y": (None, 1)}, stream=True)
checked = time.perf_counter() - start
block = dataset.inputs["x"].group_rows if way == "parquet" else None
order = shuffled(-(-len(dataset) // BATCH), BATCH, block, np.random.default_rng(0))
start = time.perf_counter()
total = 0.0
for index in order:
    batch = dataset.take(slice(int(index) * BATCH, (int(index) + 1) * BATCH))
    total += float(batch.inputs["x"][0, 0])
batches = time.perf_counter() - start
print(len(dataset), checked, batches, rss() - before)
""".replace("BATCH", str(BATCH))


def write_data(folder: Path, rows: int) -> tuple[Path, Path]:
    """The table as Parquet (row groups of GROUP_ROWS) and as an uncompressed .npz of x and y."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [f"f{i}" for i in range(FEATURES)]
    schema = pa.schema([(name, pa.float32()) for name in [*names, "y"]])
    x = np.lib.format.open_memmap(folder / "x.npy", "w+", np.float32, (rows, FEATURES))
    y = np.lib.format.open_memmap(folder / "y.npy", "w+", np.float32, (rows, 1))
    rng = np.random.default_rng(0)
    with pq.ParquetWriter(folder / "table.parquet", schema, compression="none", use_dictionary=False) as writer:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            block = rng.random((n, FEATURES + 1), dtype=np.float32)
            x[start:start + n], y[start:start + n, 0] = block[:, :FEATURES], block[:, FEATURES]
            writer.write_table(pa.table({name: block[:, k] for k, name in enumerate([*names, "y"])},
                                        schema=schema), row_group_size=GROUP_ROWS)
    x.flush()
    y.flush()
    del x, y
    npz = folder / "table.npz"
    import zipfile

    with zipfile.ZipFile(npz, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name in ("x", "y"):
            archive.write(folder / f"{name}.npy", f"{name}.npy")
            (folder / f"{name}.npy").unlink()
    return folder / "table.parquet", npz


def measure(way: str, spec: Path, data: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", CHILD, way, str(spec), str(data)], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    rows, checked, batches, grown = done.stdout.split()
    return {"rows": int(rows), "check_s": float(checked), "batches_s": float(batches), "rss_growth": int(grown)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        spec = folder / "bench.yaml"
        spec.write_text(SPEC)
        start = time.perf_counter()
        parquet, npz = write_data(folder, args.rows)
        written = time.perf_counter() - start
        data_bytes = args.rows * (FEATURES + 1) * 4
        results = {"rows": args.rows, "data_bytes": data_bytes, "parquet_bytes": parquet.stat().st_size,
                   "write_s": written, "batch": BATCH, "group_rows": GROUP_ROWS}
        for way, path in (("memory", npz), ("npz-stream", npz), ("parquet", parquet)):
            results[way] = measure(way, spec, path)
    print(f"{args.rows:,} rows, {data_bytes / 2**20:,.0f} MB of float32 values, batches of {BATCH}")
    print("| reading | check pass | batches | rows/s (batches) | peak RSS growth | growth / data |")
    print("|---|---|---|---|---|---|")
    for way in ("memory", "npz-stream", "parquet"):
        r = results[way]
        print(f"| {way} | {r['check_s']:.2f} s | {r['batches_s']:.2f} s | {args.rows / r['batches_s']:,.0f} | "
              f"{r['rss_growth'] / 2**20:,.0f} MB | {r['rss_growth'] / data_bytes:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
