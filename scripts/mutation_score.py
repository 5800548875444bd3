"""Summarise a `mutmut run` (make mutation): the score, and every mutant not killed.

The score counts killed and timed-out mutants against all mutants except the equivalent ones
listed in EQUIVALENT (each with the reason no test can tell it from the original). Exits 1
below MINIMUM_SCORE or when a mutant survives that is not listed. Mutant names follow the
source: after an edit of a mutated function, re-check the list (docs/testing.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MINIMUM_SCORE = 90.0

EQUIVALENT: dict[str, str] = {}


def main() -> int:
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    subprocess.run([mutmut, "export-cicd-stats"], check=True, capture_output=True)  # noqa: S603
    stats = json.loads(Path("mutants/mutmut-cicd-stats.json").read_text())
    listing = subprocess.run([mutmut, "results"], check=True, capture_output=True, text=True)  # noqa: S603
    not_killed: dict[str, str] = {}
    for row in listing.stdout.splitlines():
        name, _, status = row.strip().partition(": ")
        if status and status not in ("killed", "timeout"):
            not_killed[name] = status
    equivalent = {n for n in not_killed if n in EQUIVALENT}
    unexplained = {n: s for n, s in not_killed.items() if n not in EQUIVALENT}
    counted = stats["total"] - stats["skipped"] - len(equivalent)
    killed = stats["killed"] + stats["timeout"]
    score = 100.0 * killed / counted if counted else 0.0
    print(f"mutants: {stats['total']}, killed: {stats['killed']}, timed out: {stats['timeout']}")
    print(f"equivalent (listed in scripts/mutation_score.py): {len(equivalent)}")
    for name, status in sorted(unexplained.items()):
        print(f"  not killed, not listed: {name} ({status})")
    print(f"mutation score: {score:.1f} % ({killed} of {counted})")
    return 0 if score >= MINIMUM_SCORE and not unexplained else 1


if __name__ == "__main__":
    sys.exit(main())
