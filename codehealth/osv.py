"""The advisory snapshot kept fresh from OSV's API, for the packages a checkout declares.

``POST /v1/querybatch`` answers, per query and in the queries' order, only ids and modified times
(``{"results": [{"vulns": [{"id", "modified"}], "next_page_token"?}, {}]}``, at most 1000 queries a
call; a query with a ``next_page_token`` is asked again with ``page_token``). The whole records come
from ``GET /v1/vulns/<id>``, fetched only when the snapshot lacks the record or holds an older one.
The snapshot file stays the audit's one input: a scan without network reads what the last refresh
wrote, and a refresh that fails half-way still saves what it fetched.
"""

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import requests

from codehealth.dependencies import Dependency, load_advisories
from juggernaut.urlguard import OutboundRefused

BATCH = 1000  # OSV's limit of queries per querybatch call
MAX_CALLS = 20  # querybatch calls per refresh (pages included)
MAX_FETCHES = 500  # records fetched per refresh; the next scan's refresh fetches the rest


@dataclass
class Refresh:
    status: str  # "refreshed", "current", "partial: <why>" or "offline: <why>"
    fetched: int = 0
    records: int = 0  # in the snapshot afterwards

    @property
    def note(self) -> str:
        return f"{self.status} ({self.fetched} fetched, {self.records} in the snapshot)"


def _queries(deps: list[Dependency]) -> list[dict]:
    seen, queries = set(), []
    for dep in deps:
        key = (dep.ecosystem, dep.name, dep.version)
        if dep.version and key not in seen:
            seen.add(key)
            queries.append(
                {"package": {"ecosystem": dep.ecosystem, "name": dep.name}, "version": dep.version}
            )
    return queries


def _known(path: Path) -> dict[str, dict]:
    try:
        return {r["id"]: r for r in load_advisories(path) if isinstance(r, dict) and r.get("id")}
    except (OSError, ValueError):  # no snapshot yet, or an unreadable one: start afresh
        return {}


def _write(path: Path, records: dict[str, dict]) -> None:
    """Replace the snapshot whole, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own: two scans refreshing at once each replace the file whole (the later wins, and
    # what it lacks the next refresh fetches)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False, encoding="utf-8"
    ) as tmp:
        json.dump([records[k] for k in sorted(records)], tmp)
    os.replace(tmp.name, path)


def _affecting(session, base: str, queries: list[dict]) -> dict[str, str] | str:
    """Advisory id -> modified time for every query, or why OSV could not be asked."""
    wanted: dict[str, str] = {}
    pending, calls = list(queries), 0
    while pending:
        if calls == MAX_CALLS:
            return f"more than {MAX_CALLS} querybatch calls needed"
        batch, pending = pending[:BATCH], pending[BATCH:]
        calls += 1
        try:
            response = session.post(f"{base}/v1/querybatch", json={"queries": batch})
            results = response.json().get("results") if response.status_code == 200 else None
        except (requests.RequestException, OutboundRefused, ValueError, AttributeError) as exc:
            return f"OSV could not be asked ({exc.__class__.__name__})"
        if response.status_code != 200:
            return f"OSV answered HTTP {response.status_code}"
        if not isinstance(results, list) or len(results) != len(batch):
            return "OSV's answer did not match the queries"
        for query, result in zip(batch, results, strict=True):
            result = result if isinstance(result, dict) else {}
            for vuln in result.get("vulns") or []:
                if isinstance(vuln, dict) and isinstance(vuln.get("id"), str):
                    wanted[vuln["id"]] = str(vuln.get("modified") or "")
            if result.get("next_page_token"):
                pending.append({**query, "page_token": result["next_page_token"]})
    return wanted


def snapshot_refresh(path: Path | str, deps: list[Dependency], *, base_url: str, session) -> Refresh:
    """Bring the snapshot at ``path`` up to date for ``deps`` (records of other packages are kept)."""
    path = Path(path)
    known = _known(path)
    queries = _queries(deps)
    if not queries:
        return Refresh("current", records=len(known))
    base = base_url.rstrip("/")
    wanted = _affecting(session, base, queries)
    if isinstance(wanted, str):
        return Refresh(f"offline: {wanted}", records=len(known))
    missing = [
        i
        for i, modified in sorted(wanted.items())
        if i not in known or (modified and str(known[i].get("modified", "")) < modified)
    ]
    fetched, problem = 0, ""
    for vuln_id in missing[:MAX_FETCHES]:
        try:
            response = session.get(f"{base}/v1/vulns/{quote(vuln_id, safe='')}")
            record = response.json() if response.status_code == 200 else None
        except (requests.RequestException, OutboundRefused, ValueError) as exc:
            problem = f"OSV stopped answering ({exc.__class__.__name__})"
            break
        if response.status_code == 404:  # withdrawn between the two calls
            continue
        if not isinstance(record, dict) or record.get("id") != vuln_id:
            problem = f"OSV answered HTTP {response.status_code} for {vuln_id}"
            break
        known[vuln_id] = record
        fetched += 1
    if fetched:
        _write(path, known)
    if not problem and len(missing) > MAX_FETCHES:
        problem = f"{len(missing) - MAX_FETCHES} records left for the next refresh"
    status = f"partial: {problem}" if problem else ("refreshed" if fetched else "current")
    return Refresh(status, fetched=fetched, records=len(known))
