"""Reading the Loghub-2k development sets and scoring a grouping against their ground truth.

The data is not part of the repository: ``LOGHUB_DIR`` points at it (see the README).
"""

import csv
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DATASETS = ("BGL", "HDFS", "HealthApp", "Linux", "Mac", "Proxifier", "Spark", "Windows")


@dataclass(frozen=True)
class Dataset:
    name: str
    raw: list[str]
    messages: list[str]
    events: list[str]


def loghub_dir() -> Path | None:
    value = os.environ.get("LOGHUB_DIR", "")
    return Path(value) if value else None


def load(name: str, root: Path) -> Dataset:
    base = root / name / f"{name}_2k.log"
    with open(base, encoding="utf-8", errors="replace", newline="") as f:
        raw = [line.rstrip("\r\n") for line in f]
    with open(f"{base}_structured_corrected.csv", encoding="utf-8", errors="replace", newline="") as f:
        rows = list(csv.DictReader(f))
    return Dataset(name, raw, [r["Content"] for r in rows], [r["EventId"] for r in rows])


def grouping_accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float:
    """Share of lines whose predicted group holds exactly the lines of their true group."""
    by_pred: dict[str, set[int]] = defaultdict(set)
    by_true: dict[str, set[int]] = defaultdict(set)
    for i, (p, t) in enumerate(zip(predicted, truth, strict=True)):
        by_pred[p].add(i)
        by_true[t].add(i)
    correct = sum(
        len(lines) for t, lines in by_true.items() if by_pred[predicted[next(iter(lines))]] == lines
    )
    return correct / len(truth)
