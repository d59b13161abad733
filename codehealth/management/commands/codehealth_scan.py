import json
from functools import partial

from django.core.management.base import BaseCommand, CommandError

from codehealth.analysis import checkout_analyse
from codehealth.contracts import load_schema
from codehealth.dependencies import load_advisories
from codehealth.errors import CodehealthError
from codehealth.findings import KINDS
from codehealth.scan import scan_path


class Command(BaseCommand):
    help = "Analyse a local checkout (stale code, lint, contracts, dependencies) with no network and no database."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--json", action="store_true", help="one JSON object per finding, one per line")
        parser.add_argument("--kind", action="append", choices=KINDS, help="only these kinds (repeatable)")
        parser.add_argument("--schema", help="the backend's OpenAPI JSON file, for contract validation")
        parser.add_argument("--advisories", help="an OSV advisory snapshot (JSON list of records)")

    def handle(self, *args, **options):
        # the given files are read here; the checkout only in the sandbox, like a scheduled scan's
        try:
            analyse = partial(
                scan_path,
                kinds=options["kind"],
                schema=load_schema(options["schema"]) if options["schema"] else None,
                advisories=load_advisories(options["advisories"]) if options["advisories"] else None,
            )
            findings, _ = checkout_analyse(options["path"], analyse=analyse)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        except CodehealthError as exc:
            raise CommandError(exc.message) from exc
        if options["json"]:
            for finding in findings:
                self.stdout.write(json.dumps(finding.as_json(), sort_keys=False))
            return
        if not findings:
            self.stdout.write("No findings.")
            return
        width = min(60, max(len(f"{f.path}:{f.line or ''}") for f in findings))
        self.stdout.write(f"{'KIND':<10} {'CATEGORY':<22} {'CONF':>4}  {'WHERE':<{width}}  NAME — REASON")
        for f in sorted(findings, key=lambda f: (f.kind, f.path, f.line or 0)):
            where = f"{f.path}:{f.line}" if f.line else f.path
            self.stdout.write(
                f"{f.kind:<10} {f.category:<22} {f.confidence:>4}  {where:<{width}}  {f.name} — {f.reason}"
            )
        self.stdout.write(f"{len(findings)} findings")
