"""What `kspec check` costs against building the same specs (issue 19, item 2).

    python benchmarks/check_cost.py                     # specs/*.yaml, 2 rounds
    python benchmarks/check_cost.py --rounds 1 specs/mlp.yaml specs/residual.yaml
    python benchmarks/check_cost.py --json check_cost.json

Two ratios, both sides measured in the same run, each side a fresh process:

- time: `python -m kspec check SPECS` against one process that reads and
  builds (and compiles) every spec once, imports included. Target <= 2.
  Wall time, and CPU time (user + system, a forked child's included), which
  suffers less from other work on a shared machine.
- memory: the peak resident memory of that check against a fresh process
  that builds the largest spec alone. Target <= 1.5. The largest is found
  by building each spec in a child forked after one import of Keras.

Peak memory is ru_maxrss from os.wait4: the child's own peak, or a forked
grandchild's if larger; this parent never imports TensorFlow, so what a child
inherits across exec is small. Each round runs the two timed sides one after
the other, flipping the order. The machine may be shared, so every round's
ratios are printed, not only the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kspec.backend import stderr_silenced  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}


def run_child(command: list[str], allowed: tuple[int, ...] = (0,)) -> dict[str, float]:
    """Wall and CPU seconds and peak resident MB of a child process, which must exit with an allowed code.

    ru_maxrss from wait4 is the child's own peak, or a forked grandchild's
    if larger (Linux keeps the largest of a process's reaped children).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as error:  # files: no pipe to drain
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=out, stderr=error)
        tree_peak = [0]
        sampler = threading.Thread(target=_sample_tree, args=(child.pid, tree_peak), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)  # not Popen.wait, which gives no rusage
        sampler.join()
        seconds = time.perf_counter() - start
        child.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        error.seek(0)
        if code not in allowed:
            raise SystemExit(f"{' '.join(command)} exited {code}:\n{error.read().decode(errors='replace')[-2000:]}")
        return {"wall_s": seconds, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024,
                "tree_peak_mb": tree_peak[0] / 1024,
                "stdout": out.read().decode(errors="replace")}


def _sample_tree(pid: int, peak: list[int]) -> None:
    """The largest sum of resident kB over `pid` and its descendants, sampled every 0.1 s until it ends.

    An upper bound on the tree's memory: pages a forked child shares with its
    parent count twice.
    """
    while Path(f"/proc/{pid}/status").exists():
        total, pending = 0, [pid]
        while pending:
            current = pending.pop()
            try:
                status = Path(f"/proc/{current}/status").read_text()
                children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            except OSError:  # ended meanwhile
                continue
            rss = [line for line in status.splitlines() if line.startswith("VmRSS:")]
            total += int(rss[0].split()[1]) if rss else 0  # a zombie has no VmRSS
            pending += map(int, children)
        peak[0] = max(peak[0], total)
        time.sleep(0.1)


def build_all(specs: list[str]) -> None:
    """The baseline: read and build every spec once, in this process."""
    from kspec.build import build, import_keras
    from kspec.spec import read_spec

    keras = import_keras()
    for path in specs:
        build(read_spec(Path(path))[0])
        keras.backend.clear_session()


def single_peaks(specs: list[str]) -> None:
    """Each spec built alone, in a child forked after Keras's import: prints each child's peak MB as JSON.

    One import instead of one per spec, to find the largest build quickly; the
    largest is then measured again in a fresh process.
    """
    with stderr_silenced():
        import keras  # noqa: F401  (modules only: nothing started before the forks)
    peaks = {}
    for spec in specs:
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(reader)
            build_all([spec])
            peak = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
            os.write(writer, peak.split()[1].encode())
            os._exit(0)
        os.close(writer)
        with os.fdopen(reader) as pipe:
            peaks[spec] = int(pipe.read() or 0) / 1024
        os.waitpid(pid, 0)
    print(json.dumps(peaks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("specs", nargs="*")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, help="Write every sample here.")
    parser.add_argument("--largest", help="The spec with the largest build, when known: skips the search.")
    parser.add_argument("--child", choices=["build", "singles"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    specs = args.specs or sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
    if args.child:
        return build_all(specs) if args.child == "build" else single_peaks(specs)

    me = [sys.executable, str(Path(__file__).resolve())]
    scan = {} if args.largest else json.loads(run_child([*me, "--child", "singles", *specs])["stdout"])
    largest = args.largest or max(scan, key=scan.__getitem__)
    single = run_child([*me, "--child", "build", largest])
    found = f" ({scan[largest]:.0f} MB forked after the import)" if scan else ""
    print(f"largest single build: {largest}, {single['peak_mb']:.0f} MB in a fresh process{found}", flush=True)
    sides = {"build": [*me, "--child", "build", *specs], "check": [sys.executable, "-m", "kspec", "check", *specs]}
    rounds = []
    for index in range(args.rounds):
        order = ["build", "check"] if index % 2 == 0 else ["check", "build"]
        measured = {name: run_child(sides[name], (0, 1) if name == "check" else (0,)) for name in order}
        build, check = measured["build"], measured["check"]
        rounds.append({"build": build, "check": check, "time_ratio": check["wall_s"] / build["wall_s"],
                       "cpu_ratio": check["cpu_s"] / build["cpu_s"], "memory_ratio": check["peak_mb"] / single["peak_mb"],
                       "tree_memory_ratio": check["tree_peak_mb"] / single["peak_mb"]})
        print(f"round {index + 1}: check {check['wall_s']:.1f} s / build all {build['wall_s']:.1f} s "
              f"= {rounds[-1]['time_ratio']:.2f} x (CPU time {check['cpu_s']:.1f} / {build['cpu_s']:.1f} s "
              f"= {rounds[-1]['cpu_ratio']:.2f} x); peak {check['peak_mb']:.0f} MB / {single['peak_mb']:.0f} MB "
              f"= {rounds[-1]['memory_ratio']:.2f} x, all of check's processes together at most "
              f"{check['tree_peak_mb']:.0f} MB = {rounds[-1]['tree_memory_ratio']:.2f} x (build all: "
              f"{build['peak_mb']:.0f} MB)", flush=True)
    summary = {key: statistics.median(r[key] for r in rounds)
               for key in ("time_ratio", "cpu_ratio", "memory_ratio", "tree_memory_ratio")}
    print(f"{len(specs)} specs, median of {len(rounds)} round(s): time {summary['time_ratio']:.2f} x, "
          f"CPU time {summary['cpu_ratio']:.2f} x (target <= 2); memory {summary['memory_ratio']:.2f} x, "
          f"all processes together at most {summary['tree_memory_ratio']:.2f} x (target <= 1.5)")
    if args.json:
        for item in [single, *(r[side] for r in rounds for side in ("build", "check"))]:
            item.pop("stdout", None)
        args.json.write_text(json.dumps({"specs": specs, "rounds": rounds, **summary, "largest": largest,
                                         "largest_single": single, "forked_single_peaks_mb": scan}, indent=2))


if __name__ == "__main__":
    main()
