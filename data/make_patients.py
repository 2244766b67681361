"""Make data/patients.npz: a small made-up table of patients, for specs/structured_data.yaml.

Rows in the style of the heart-disease table of keras.io's "Structured data
classification from scratch" (numbers on very different scales, a sex coded
0/1, a category written as a string), with a label that depends on all three.
The values are drawn at random, not measured: the file is for trying the
spec, not for medicine. Deterministic (a fixed seed):

    python data/make_patients.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROWS = 300
THAL = np.array(["normal", "fixed", "reversible"])


def make(rows: int = ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    age = rng.normal(54, 9, rows)
    pressure = rng.normal(131, 17, rows)  # resting blood pressure, mm Hg
    cholesterol = rng.normal(246, 51, rows)  # mg/dl
    max_rate = rng.normal(150, 23, rows)  # maximum heart rate reached
    sex = rng.integers(0, 2, rows)
    thal = rng.choice(THAL, size=rows, p=[0.55, 0.1, 0.35])
    # A risk made of every column, so the model must use the numbers, the code and the string.
    risk = (0.06 * (age - 54) + 0.02 * (pressure - 131) - 0.04 * (max_rate - 150) + 0.8 * sex
            + np.select([thal == "reversible", thal == "fixed"], [1.5, 0.7], -0.8) + rng.normal(0, 0.5, rows))
    return {
        "numbers": np.stack([age, pressure, cholesterol, max_rate], axis=1).astype("float32"),
        "sex": sex.reshape(rows, 1).astype("int64"),
        "thal": thal.reshape(rows, 1),  # a NumPy unicode array: no pickle needed
        "target": (risk > 0).astype("float32").reshape(rows, 1),
    }


if __name__ == "__main__":
    np.savez(HERE / "patients.npz", **make())
    print(f"wrote {HERE / 'patients.npz'}")
