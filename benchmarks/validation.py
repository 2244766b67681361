"""Figure 1: `kspec validate` on every shipped spec, against `import tensorflow`.

Both sides are fresh processes, as a user runs them. A second check runs
`kspec --help` and `kspec validate` in a child process and lists the heavy
frameworks that ended up in its sys.modules: there must be none.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from typing import Any

from common import PYTHON, QUIET_ENV, ROOT, Report, alternate, median_ratio, profile, row, run_seconds

HEAVY = ("tensorflow", "keras", "jax", "torch")
# Runs the CLI in-process and prints which heavy modules it imported, whatever the exit code.
_IMPORT_CHECK = """
import json, sys
from kspec.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def shipped_specs() -> list[str]:
    return sorted(str(path.relative_to(ROOT)) for path in (ROOT / "specs").glob("*.yaml"))


def heavy_imports(args: list[str]) -> list[str]:
    """The heavy frameworks a CLI command imports (run in a child process)."""
    done = subprocess.run([PYTHON, "-c", _IMPORT_CHECK.format(heavy=HEAVY), *args], cwd=ROOT,
                          env=QUIET_ENV, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(report: Report, rounds: int, profile_misses: bool) -> None:
    specs = shipped_specs()
    sides = {
        "validate": lambda: run_seconds([PYTHON, "-m", "kspec", "validate", *specs]),
        "import tensorflow": lambda: run_seconds([PYTHON, "-c", "import tensorflow"]),
    }
    samples = alternate(sides, rounds)
    ratio = median_ratio(samples["validate"], samples["import tensorflow"])
    report.details["validation"] = samples
    speed = row(f"1. kspec validate ({len(specs)} shipped specs) / import tensorflow", ratio, "<=", 0.05,
                f"{statistics.median(samples['validate']):.2f} s vs "
                f"{statistics.median(samples['import tensorflow']):.2f} s")
    report.add(speed)

    imported: dict[str, Any] = {}
    for name, args in (("--help", ["--help"]), ("validate", ["validate", *specs])):
        imported[name] = heavy_imports(args)
        report.add(row(f"1. kspec {name}: heavy modules imported", float(len(imported[name])), "<=", 0,
                       ", ".join(imported[name]) or "none of " + ", ".join(HEAVY), unit=""))
    report.details["validation_imports"] = imported

    if profile_misses and speed.met is False:
        from kspec.spec import validate

        report.profiles["1. validate"] = profile(lambda: [validate(ROOT / spec) for spec in specs])

