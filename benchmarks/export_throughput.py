"""Inference throughput of each `kspec export` format in its own runtime against Keras's predict, on CPU.

    python benchmarks/export_throughput.py                   # digits_cnn, batch sizes 1, 32 and 256
    python benchmarks/export_throughput.py --spec mlp --rounds 3

The spec is built with fresh weights and exported to every format (the
parity check included). Each round times, on the same rows and batch size,
Keras's `model.predict(rows, batch_size=B)`, a loop of Keras's
`predict_on_batch` over the same batches (what a server calling Keras per
request does), and a loop over the same batches in the export's runtime (a SavedModel's signature in TensorFlow, an ONNX
Runtime session, a LiteRT signature runner); the sides alternate which goes
first. The figure is the median over rounds of export rows/s / Keras rows/s.
Each side runs once untimed first (graph tracing, session start).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def servers(fmt: str, path: Path, spec: Any) -> Callable[[dict[str, np.ndarray]], Any]:
    """A function running one batch in the export's runtime, loaded once."""
    if fmt == "saved_model":
        import tensorflow as tf

        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        return lambda batch: serve(**{name: tf.constant(values) for name, values in batch.items()})
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda batch: session.run(None, batch)
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    return lambda batch: runner(**batch)


def rows_per_second(run: Callable[[], Any], rows: int) -> float:
    started = time.perf_counter()
    run()
    return rows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="digits_cnn")
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--batch-sizes", default="1,32,256")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from kspec.adapt import adapt_synthetic
    from kspec.backend import select_backend
    from kspec.build import build
    from kspec.data import Dataset, synthetic_inputs
    from kspec.export import FORMATS, export
    from kspec.files import save_model
    from kspec.spec import read_spec

    select_backend(None)
    spec, _ = read_spec(ROOT / "specs" / f"{args.spec}.yaml", ())
    print("| format | batch size | rows | export rows/s | Keras predict rows/s | export / predict (median) "
          "| Keras predict_on_batch rows/s | export / predict_on_batch (median) |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "model.keras"
        model = adapt_synthetic(build(spec), 64, None).model
        save_model(model, weights)
        for fmt in FORMATS:
            path = Path(folder) / (fmt + {"saved_model": "", "onnx": ".onnx", "litert": ".tflite"}[fmt])
            export(spec, weights, fmt, path)
            serve = servers(fmt, path, spec)
            for batch_size in (int(b) for b in args.batch_sizes.split(",")):
                rows = args.rows if batch_size > 1 else min(args.rows, 256)  # batch 1 is slow on both sides
                inputs = synthetic_inputs(spec, rows, np.random.default_rng(0))
                x = Dataset(inputs, {}, "rows").x(spec)
                batches = [{k: v[s:s + batch_size] for k, v in inputs.items()} for s in range(0, rows, batch_size)]

                def keras_side() -> None:
                    model.predict(x, batch_size=batch_size, verbose=0)

                def keras_batches() -> None:
                    for start in range(0, rows, batch_size):
                        model.predict_on_batch(Dataset(batches[start // batch_size], {}, "rows").x(spec))

                def export_side() -> None:
                    for batch in batches:
                        serve(batch)

                keras_side(), keras_batches(), export_side()  # untimed: tracing, first allocations
                ratios, ratios_on_batch, theirs, on_batch, ours = [], [], [], [], []
                for round_ in range(args.rounds):
                    sides = [(keras_side, theirs), (keras_batches, on_batch), (export_side, ours)]
                    for run, into in sides if round_ % 2 == 0 else sides[::-1]:
                        into.append(rows_per_second(run, rows))
                    ratios.append(ours[-1] / theirs[-1])
                    ratios_on_batch.append(ours[-1] / on_batch[-1])
                print(f"| {fmt} | {batch_size} | {rows} | {statistics.median(ours):,.0f} | "
                      f"{statistics.median(theirs):,.0f} | {statistics.median(ratios):.2f} | "
                      f"{statistics.median(on_batch):,.0f} | {statistics.median(ratios_on_batch):.2f} |", flush=True)


if __name__ == "__main__":
    main()
