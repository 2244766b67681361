"""Make data/digits.npz and data/digit_pairs_{train,val}.npz from scikit-learn's digits.

Run once, with scikit-learn installed (it is not a kspec dependency):

    pip install scikit-learn && python data/make_digits.py

The output is deterministic (fixed seeds), so running it again gives the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
PAIRS_PER_IMAGE = 4  # pairs drawn per image, half of them showing the same digit
VALIDATION_FRACTION = 0.2


def make_pairs(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Pairs of images from one pool: half the same digit, half different digits."""
    by_digit = [np.flatnonzero(labels == d) for d in range(10)]
    firsts, seconds, same = [], [], []
    for index in np.repeat(np.arange(len(images)), PAIRS_PER_IMAGE):
        digit = labels[index]
        if rng.random() < 0.5:
            other = rng.choice(by_digit[digit])
            same.append(1.0)
        else:
            other_digit = rng.choice([d for d in range(10) if d != digit])
            other = rng.choice(by_digit[other_digit])
            same.append(0.0)
        firsts.append(index)
        seconds.append(other)
    order = rng.permutation(len(firsts))
    return {
        "digit_a": images[np.array(firsts)[order]],
        "digit_b": images[np.array(seconds)[order]],
        "same": np.array(same, dtype="float32")[order].reshape(-1, 1),
    }


def main() -> None:
    digits = load_digits()
    rng = np.random.default_rng(1797)
    order = rng.permutation(len(digits.target))
    # 8x8 grey images with values 0..16, scaled to [0, 1], with a channel axis.
    images = (digits.images[order] / 16.0).astype("float32")[..., np.newaxis]
    labels = digits.target[order].astype("int64")
    np.savez_compressed(HERE / "digits.npz", image=images, digit=labels)

    split = int(len(labels) * (1 - VALIDATION_FRACTION))
    # Validation pairs come from images that no training pair uses.
    train = make_pairs(images[:split], labels[:split], rng)
    val = make_pairs(images[split:], labels[split:], rng)
    np.savez_compressed(HERE / "digit_pairs_train.npz", **train)
    np.savez_compressed(HERE / "digit_pairs_val.npz", **val)
    print(f"digits: {len(labels)} images; pairs: {len(train['same'])} train, {len(val['same'])} val")


if __name__ == "__main__":
    main()
