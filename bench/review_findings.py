"""What following a pull request's findings costs a review: anchoring the new findings, moving the open
ones to where their code stands now, and sorting one against the other, at the sizes the ledger
allows (200 open findings, a report of 100) in one long file. Pure CPU: no GitHub, no git.

Usage: python bench/review_findings.py [--lines 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.domain.findings import MAX_TRACKED, FileIndex, TrackedFinding, anchor_of, relocate  # noqa: E402
from app.pipeline.review.incremental import Scope, sort_findings  # noqa: E402
from app.pipeline.review.report import MAX_FINDINGS  # noqa: E402

WORDS = "value total count index parser header buffer offset limit result".split()


def file_lines(n: int, rng: random.Random) -> list[str]:
    return [f"    {rng.choice(WORDS)}_{i} = {rng.choice(WORDS)}({i}, {rng.randint(0, 99)})" for i in range(n)]


def finding(lines: list[str], line: int, rng: random.Random) -> TrackedFinding:
    text = " ".join(rng.choice(WORDS) for _ in range(25))
    return TrackedFinding(path="big.py", line=line, severity=rng.choice(["major", "minor", "nit"]), message=text,
                          anchor=anchor_of(lines, line, line))


def one_round(n: int, rng: random.Random) -> float:
    old = file_lines(n, rng)
    new = ["# added on top"] * 30 + old  # every finding moves down by 30
    open_ = [finding(old, rng.randint(1, n), rng) for _ in range(MAX_TRACKED)]
    reported = [finding(new, f.line + 30, rng) for f in open_[:MAX_FINDINGS // 2]]  # half of them repeated...
    reported += [finding(new, rng.randint(1, n), rng) for _ in range(MAX_FINDINGS // 2)]  # ...half new
    started = time.perf_counter()
    index = FileIndex(new)

    moved = [relocate(f, index) for f in open_]
    sort_findings([f.model_copy(update={"anchor": anchor_of(new, f.line, f.line)}) for f in reported],
                  Scope("incremental", "new_commits", [], earlier=moved))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(13)
    times = [one_round(args.lines, rng) for _ in range(args.rounds)]
    print(f"{MAX_TRACKED} open findings, {MAX_FINDINGS} reported, one file of {args.lines} lines: "
          f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
