"""Validate and build timings of this tree against an earlier commit, for refactors.

    python benchmarks/before_after.py BASE_REV [--rounds 7]

BASE_REV is checked out in a temporary git worktree. Each measurement runs in
a fresh process (imports excluded from the timing), the two trees alternate
in every round, and the median of the per-round ratios is printed (this tree
over BASE_REV: below 1 is faster). Measured: validating every shipped spec
20 times, validating a generated 5,000-layer chain and graph, building every
shipped spec, and building a 1,000-layer chain.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MEASURES = ("validate_seeds", "validate_chain_5000", "validate_graph_5000", "build_seeds", "build_chain_1000")


def measure(tree: str, what: str, scratch: str) -> float:
    """Seconds one measurement takes in `tree` (run as a child: `before_after.py --child`)."""
    sys.path[:0] = [tree, str(HERE)]
    import generated
    from kspec.spec import read_spec, validate

    specs = sorted(str(path) for path in Path(tree, "specs").glob("*.yaml"))
    if what == "validate_seeds":
        validate(specs[0])  # warm the catalogue
        started = time.perf_counter()
        for _ in range(20):
            for spec in specs:
                validate(spec)
        return time.perf_counter() - started
    kind, _, sized = what.partition("_")
    targets = specs if sized == "seeds" else [_generated_spec(generated, sized, scratch)]
    if kind == "validate":
        started = time.perf_counter()
        validate(targets[0])
        return time.perf_counter() - started
    from kspec.build import build, import_keras

    keras = import_keras()
    build(read_spec(targets[0])[0])  # warm Keras
    keras.backend.clear_session()
    started = time.perf_counter()
    for target in targets:
        build(read_spec(target)[0])
        keras.backend.clear_session()
    return time.perf_counter() - started


def _generated_spec(generated: Any, sized: str, scratch: str) -> str:
    """A generated spec (`chain_5000`, `graph_5000`) written once into the scratch folder."""
    shape, size = sized.split("_")
    path = Path(scratch, f"{sized}.yaml")
    if not path.exists():
        text = generated.chain_yaml(int(size)) if shape == "chain" else generated.graph_yaml(int(size))
        path.write_text(text, encoding="utf-8")
    return str(path)


def child_seconds(tree: str, what: str, scratch: str) -> float:
    command = [sys.executable, __file__, "--child", tree, what, scratch]
    result = subprocess.run(command, capture_output=True, text=True, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""})
    if result.returncode:
        raise RuntimeError(f"{what} in {tree} failed:\n{result.stderr[-2000:]}")
    return float(result.stdout.split()[-1])


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        print(measure(*sys.argv[2:5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        base = str(Path(scratch, "base"))
        subprocess.run(["git", "worktree", "add", "--detach", "-q", base, args.base], cwd=ROOT, check=True)
        try:
            for what in MEASURES:
                ratios, before, after = [], [], []
                for round_number in range(args.rounds):
                    order = (base, str(ROOT)) if round_number % 2 == 0 else (str(ROOT), base)
                    seconds = {tree: child_seconds(tree, what, scratch) for tree in order}
                    before.append(seconds[base])
                    after.append(seconds[str(ROOT)])
                    ratios.append(seconds[str(ROOT)] / seconds[base])
                print(f"{what:22s} {args.base[:10]} {statistics.median(before):.3f}s  this tree "
                      f"{statistics.median(after):.3f}s  median ratio {statistics.median(ratios):.3f}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", base], cwd=ROOT, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
