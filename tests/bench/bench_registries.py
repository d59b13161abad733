"""Outdated-package lookups: one registry ask at a time against eight in flight, in the same run.

A fake PyPI and npm (``tests/fakes/registries.py``) answer each ask after ``--delay`` seconds, as a
registry across the internet does; a checkout declares ``--packages`` packages (half PyPI, half npm).
Each mode starts with an empty cache and goes through the scan's own fetcher (one HTTP session).

    .venv/bin/python tests/bench/bench_registries.py [--packages 80] [--delay 0.08]

Nothing here asserts anything; it prints the figures.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=80)
    parser.add_argument("--delay", type=float, default=0.08)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(DEBUG="1", DJANGO_SETTINGS_MODULE="juggernaut.settings", LOG_LEVEL="WARNING")
    os.environ.setdefault("HQ_VAR_DIR", tempfile.mkdtemp(prefix="hq-bench-"))
    import django

    django.setup()
    from codehealth import sources
    from codehealth.dependencies import RegistryCache, declared_dependencies, outdated
    from tests.fakes.registries import FakeRegistries

    half = args.packages // 2
    checkout = Path(tempfile.mkdtemp(prefix="hq-bench-deps-"))
    (checkout / "requirements.txt").write_text("".join(f"package-{n}==1.0\n" for n in range(half)))
    npm = ", ".join(f'"pkg-{n}": "^1.0.0"' for n in range(args.packages - half))
    (checkout / "package.json").write_text(f'{{"dependencies": {{{npm}}}}}')
    deps = declared_dependencies(checkout)
    fake = FakeRegistries(
        pypi={f"package-{n}": "1.2" for n in range(half)},
        npm={f"pkg-{n}": "2.0.0" for n in range(args.packages - half)},
        delay=args.delay,
    )
    print(
        f"{len(deps)} packages, each answer after {args.delay * 1000:.0f} ms; seconds per audit "
        f"(median of {args.rounds}, a cold cache each)"
    )
    print(f"{'asks in flight':>15} {'seconds':>8} {'outdated found':>15}")
    with fake.serve():
        urls = {"pypi": f"{fake.url}/pypi", "npm": fake.url}
        for workers in (1, 8):
            times, found = [], 0
            for _ in range(args.rounds):
                started = time.perf_counter()
                findings, _ = outdated(
                    deps, sources.registry_fetcher(), RegistryCache(), urls, workers=workers
                )
                times.append(time.perf_counter() - started)
                found = len(findings)
            print(f"{workers:>15} {sorted(times)[len(times) // 2]:>8.2f} {found:>15}")


if __name__ == "__main__":
    main()
