"""Fingerprinting: grouping accuracy and throughput on Loghub-2k sets, next to Drain3.

For each dataset, on bare messages (the ``Content`` column) and on raw lines, prints the grouping
accuracy of our fingerprinter (one configuration for every source) and of the Drain3 library with its
default settings and with the settings of its example ``drain3.ini`` (masks, ``_`` as a delimiter),
then the throughput of the three over all lines, measured in the same run.

    LOGHUB_DIR=../shared/data/loghub2k .venv/bin/python tests/bench/bench_fingerprint.py

``HELDOUT_DIR`` adds a second table for the Loghub-2k sets under it that are not development sets
(the other eight of the sixteen, fetched from https://github.com/logpai/loghub and kept outside the
repository): the fingerprinter is never tuned on them, so they say how it does on logs it has not seen.

Drain3 is installed for this benchmark only: ``pip install -e '.[bench]'``.
"""

import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from drain3 import TemplateMiner  # noqa: E402
from drain3.masking import MaskingInstruction  # noqa: E402
from drain3.template_miner_config import TemplateMinerConfig  # noqa: E402

from logscrawler.fingerprint import GROUPING_VERSION, Fingerprinter  # noqa: E402
from logscrawler.masking import mask_token  # noqa: E402
from tests.logscrawler.loghub import DATASETS, dataset_names, grouping_accuracy, load, loghub_dir  # noqa: E402

# Drain3's examples/drain3.ini, [MASKING] and [DRAIN] sections.
EXAMPLE_MASKS = [
    (r"((?<=[^A-Za-z0-9])|^)(([0-9a-f]{2,}:){3,}([0-9a-f]{2,}))((?=[^A-Za-z0-9])|$)", "ID"),
    (r"((?<=[^A-Za-z0-9])|^)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})((?=[^A-Za-z0-9])|$)", "IP"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9a-f]{6,} ?){3,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9A-F]{4} ?){4,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)(0x[a-f0-9A-F]+)((?=[^A-Za-z0-9])|$)", "HEX"),
    (r"((?<=[^A-Za-z0-9])|^)([\-\+]?\d+)((?=[^A-Za-z0-9])|$)", "NUM"),
    (r"(?<=executed cmd )(\".+?\")", "CMD"),
]


def drain3_default() -> TemplateMiner:
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    return TemplateMiner(config=config)


def drain3_example() -> TemplateMiner:
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    config.masking_instructions = [MaskingInstruction(p, m) for p, m in EXAMPLE_MASKS]
    config.mask_prefix, config.mask_suffix = "<:", ":>"
    config.drain_sim_th, config.drain_depth = 0.4, 4
    config.drain_max_children, config.drain_max_clusters = 100, 1024
    config.drain_extra_delimiters = ["_"]
    return TemplateMiner(config=config)


def run_drain3(factory: Callable[[], TemplateMiner]) -> Callable[[list[str]], list[str]]:
    def group(lines: list[str]) -> list[str]:
        miner = factory()
        return [str(miner.add_log_message(line)["cluster_id"]) for line in lines]

    return group


def run_ours(raw: bool) -> Callable[[list[str]], list[str]]:
    def group(lines: list[str]) -> list[str]:
        mask_token.cache_clear()  # no warm start from an earlier run
        return Fingerprinter(raw=raw).fingerprint_all(lines)

    return group


def score(title: str, datasets: list, parsers: dict) -> tuple[int, dict[str, float]]:
    """Print one accuracy table; the lines grouped and the seconds each parser spent."""
    print(f"{title} (grouping configuration v{GROUPING_VERSION}; fresh state per dataset)")
    print(f"{'dataset':11}" + "".join(f" | {name:>20} msg  raw" for name in parsers))
    totals = {name: [0.0, 0.0] for name in parsers}
    seconds = {name: 0.0 for name in parsers}
    lines = 0
    for ds in datasets:
        row = f"{ds.name:11}"
        for name, (on_messages, on_raw) in parsers.items():
            scores = []
            for mode, group, inputs in (("msg", on_messages, ds.messages), ("raw", on_raw, ds.raw)):
                started = time.perf_counter()
                predicted = group(inputs)
                seconds[name] += time.perf_counter() - started
                scores.append(grouping_accuracy(predicted, ds.events))
                totals[name][mode == "raw"] += scores[-1]
            row += f" | {'':>16} {scores[0]:.3f} {scores[1]:.3f}"
        lines += len(ds.messages) + len(ds.raw)
        print(row)
    n = len(datasets)
    print(f"{'average':11}" + "".join(f" | {'':>16} {m / n:.3f} {r / n:.3f}" for m, r in totals.values()))
    return lines, seconds


def main() -> None:
    root = loghub_dir()
    if root is None:
        sys.exit("set LOGHUB_DIR to the Loghub-2k development sets")
    parsers = {
        "ours": (run_ours(False), run_ours(True)),
        "drain3 default": (run_drain3(drain3_default),) * 2,
        "drain3 example masks": (run_drain3(drain3_example),) * 2,
    }
    lines, seconds = score("grouping accuracy, development sets", [load(n, root) for n in DATASETS], parsers)
    heldout = loghub_dir("HELDOUT_DIR")
    if heldout is not None:
        names = [n for n in dataset_names(heldout) if n not in DATASETS]
        print()
        more, spent = score("grouping accuracy, held-out sets", [load(n, heldout) for n in names], parsers)
        lines += more
        seconds = {name: seconds[name] + spent[name] for name in seconds}
    print(f"\nthroughput over {lines} lines (messages and raw lines, fresh state per dataset)")
    for name, spent in seconds.items():
        print(f"  {name:22} {lines / spent:10,.0f} lines/s")


if __name__ == "__main__":
    main()
