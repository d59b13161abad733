"""Reading the Loghub-2k development sets and scoring a grouping against their ground truth.

The data is not part of the repository: ``LOGHUB_DIR`` points at it (see the README). A set keeps
its re-labelled ground truth (``_structured_corrected.csv``) when it has one, else Loghub's original
(``_structured.csv``).
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


def loghub_dir(variable: str = "LOGHUB_DIR") -> Path | None:
    value = os.environ.get(variable, "")
    return Path(value) if value else None


def dataset_names(root: Path) -> list[str]:
    """The Loghub-2k sets under ``root``: folders holding ``<Name>_2k.log``."""
    return sorted(d.name for d in root.iterdir() if (d / f"{d.name}_2k.log").exists())


def load(name: str, root: Path) -> Dataset:
    base = root / name / f"{name}_2k.log"
    with open(base, encoding="utf-8", errors="replace", newline="") as f:
        raw = [line.rstrip("\r\n") for line in f]
    truth = Path(f"{base}_structured_corrected.csv")
    if not truth.exists():  # the sets Loghub did not re-label keep their original ground truth
        truth = Path(f"{base}_structured.csv")
    with open(truth, encoding="utf-8", errors="replace", newline="") as f:
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
