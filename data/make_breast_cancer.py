"""Make data/breast_cancer.csv from scikit-learn's bundled Breast Cancer Wisconsin (Diagnostic) table.

Run once, with scikit-learn and pyarrow installed (scikit-learn is not a kspec dependency):

    pip install scikit-learn pyarrow && python data/make_breast_cancer.py

The rows come in a fixed shuffled order (seed 0), so the file is the same every time and
a validation split (the last rows) holds both diagnoses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as csv
from sklearn.datasets import load_breast_cancer

HERE = Path(__file__).resolve().parent


def main() -> None:
    table = load_breast_cancer()
    order = np.random.default_rng(0).permutation(len(table.target))
    columns = {"id": np.arange(1, len(order) + 1)}
    for k, name in enumerate(table.feature_names):
        columns[name.replace(" ", "_")] = np.round(table.data[order, k], 6)
    columns["malignant"] = (table.target[order] == 0).astype(np.int64)  # scikit-learn's 0 is malignant
    csv.write_csv(pa.table(columns), HERE / "breast_cancer.csv")
    print(f"wrote {HERE / 'breast_cancer.csv'}: {len(order)} rows, {len(columns)} columns")


if __name__ == "__main__":
    main()
