"""The walk: every page at 390, 768, 1440 and 1920 px, with the states an operator meets.

It fails on any element wider than its card or the viewport, on a console error, on an outcome word
that the database contradicts (a ✓ for a repair that did not help, "failed" for a stopped call), and
on a link in the activity feed or on the Overview that does not open a page. It writes the table of
what it saw to test-artifacts/walk.md."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from juggernaut.engine import handlers
from juggernaut.engine import services as engine
from juggernaut.engine.handlers import PermanentError
from juggernaut.engine.models import Status, Task
from juggernaut.engine.worker import WorkerLoop
from juggernaut.models import Event
from routing import services as routing
from routing.clients import OpenRouterError
from routing.models import Usage
from selfheal import services as selfheal
from tests.conftest import ARTIFACTS, BrowserProblems, screenshot
from tests.routing.conftest import seeded_policies  # noqa: F401

pytestmark = pytest.mark.browser

WIDTHS = (390, 768, 1440, 1920)
# Elements wider than their card (unless inside something that scrolls sideways on purpose) or
# sticking out of the viewport, named so a failure says which.
TOO_WIDE = """() => {
  const vw = document.documentElement.clientWidth;
  const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    (typeof e.className === 'string' && e.className ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
  const scrolls = e => { const s = getComputedStyle(e); return ['auto', 'scroll', 'hidden', 'clip'].includes(s.overflowX); };
  const out = [];
  for (const e of document.querySelectorAll('main *, header *, nav *, .swagger-ui *')) {
    const r = e.getBoundingClientRect();
    if (!r.width || getComputedStyle(e).position === 'fixed') continue;
    let p = e.parentElement, clipped = false, card = null;
    while (p && p !== document.body) {
      if (scrolls(p)) { clipped = true; break; }
      if (!card && p.classList.contains('card')) card = p;
      p = p.parentElement;
    }
    if (clipped) continue;
    if (r.right > vw + 1 || r.left < -1) { out.push(name(e) + ' ' + Math.round(r.width) + ' px past the viewport'); continue; }
    if (card) {
      const c = card.getBoundingClientRect();
      if (r.right > c.right + 1 || r.left < c.left - 1) out.push(name(e) + ' wider than its card ' + name(card));
    }
    if (out.length >= 5) break;
  }
  return out;
}"""
SCROLLS = """() => [...document.querySelectorAll('main .table-scroll')]
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => 'a table scrolls sideways by ' + (e.scrollWidth - e.clientWidth) + ' px in #' + (e.closest('[id]') || {}).id)"""
# A chart shows its whole period and both axes at every width: it never hides part of itself.
CHARTS = """() => [...document.querySelectorAll('.chart-scroll')]
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => 'a chart hides ' + (e.scrollWidth - e.clientWidth) + ' px of itself in #' + (e.closest('[id]') || {}).id)"""
LINKS = """sel => [...document.querySelectorAll(sel)].map(a => a.getAttribute('href'))
  .filter(h => h && h.startsWith('/') && !h.startsWith('/logout'))"""


@pytest.fixture
def denied_upload():
    def upload(ctx):
        raise PermanentError("S3 AccessDenied: s3://reports/weekly.csv")

    handlers.register("upload_report", upload)
    yield
    handlers.unregister("upload_report")


def states(alice) -> dict:
    """What an operator meets on a working day: a permanent failure a repair did not help, an
    approval, a repair in progress, a stopped model call and a refused one."""
    worker = engine.worker_register("builtin", capabilities=["timer"])
    upload = engine.task_create("Upload the weekly report", kind="upload_report", actor="operator:alice")
    Task.objects.filter(pk=upload.pk).update(
        status=Status.RUNNING,
        lease_owner=worker,
        lease_incarnation=worker.incarnation,
        lease_expires_at=timezone.now() - timedelta(minutes=5),
        attempts=1,
    )
    useless = selfheal.repair_run(actions=["release_expired_leases"], actor="operator:alice")
    Task.objects.filter(status=Status.PENDING).update(next_attempt_at=None)
    WorkerLoop("walk", capabilities=[], poll_seconds=0.1).run(exit_when_idle=True)
    engine.task_create("Ship release 2.4", kind="noop", needs_approval=True)
    blocked = engine.task_create("Render the charts", kind="noop", required_capabilities=["gpu"])
    Task.objects.filter(pk=blocked.pk).update(status=Status.FAILED, attempts=1, max_attempts=3)
    pending = selfheal.repair_run(actions=["requeue_failed"], actor="operator:alice")
    selection = routing.route_select("ops", prompt_tokens=10, max_tokens=100)
    routing.usage_record(
        routing.budget_reserve(selection, session="alice/walk"),
        selection,
        None,
        error=OpenRouterError("cancelled", "the call was cancelled", permanent=True),
    )
    routing.budget_set(scope="global", period="day", limit_usd=Decimal("0.000001"))
    with pytest.raises(Exception, match="Budget exceeded"):
        routing.budget_reserve(routing.route_select("ops", prompt_tokens=10, max_tokens=100))
    from chat import services as chat

    session = chat.session_create(alice, mode="ops", title="Why is the deploy failing?")
    return {"upload": upload, "worker": worker, "useless": useless, "pending": pending, "session": session}


def check_outcomes(page, path: str) -> int:
    """The outcome words on screen against the rows they describe; returns how many were checked."""
    checked = 0
    if path.startswith("/selfheal/"):
        for row in page.query_selector_all("#selfheal-history li[id^=selfheal-exec-]"):
            pk = int(row.get_attribute("id").rsplit("-", 1)[1])
            truth = selfheal.execution_outcome(selfheal.execution_get(pk))
            text = row.inner_text()
            assert row.get_attribute("data-outcome") == truth["state"], (pk, text)
            assert truth["words"] in text, (pk, text)
            assert ("✓" in text) == (truth["state"] == "fixed"), f"repair #{pk}: {text}"
            checked += 1
    if path.startswith("/routing/"):
        for row in page.query_selector_all("#routing-calls tr[id^=routing-call-]"):
            usage = Usage.objects.get(pk=int(row.get_attribute("id").rsplit("-", 1)[1]))
            outcome = row.query_selector("td:last-child").inner_text()
            if usage.outcome in ("cancelled", "refused"):
                assert usage.outcome in outcome and "failed" not in outcome, outcome
            checked += 1
    if path.startswith("/engine/tasks/") and path.rstrip("/").split("/")[-1].isdigit():
        task = Task.objects.get(pk=int(path.rstrip("/").split("/")[-1]))
        assert task.get_status_display().lower() in page.inner_text("main").lower()
        checked += 1
    return checked


def test_the_walk(signed_in_page, hq_server, alice, denied_upload, settings, seeded_policies):  # noqa: F811
    page = signed_in_page
    # The feed shows only what this walk makes: events left by processes of earlier tests may name
    # rows those tests' flush removed, and a link to them proves nothing about the pages.
    Event.objects.all().delete()
    alice.is_superuser = True
    alice.save()
    made = states(alice)
    problems = BrowserProblems(page)
    nav = page.eval_on_selector_all("nav.nav a", "links => links.map(a => a.getAttribute('href'))")
    paths = dict.fromkeys([h for h in nav if h and h != "/admin/"])
    paths |= dict.fromkeys(
        [
            "/",
            "/engine/tasks/",
            f"/engine/tasks/{made['upload'].pk}/",
            f"/engine/workers/{made['worker'].pk}/",
            "/settings/",
            "/areas/chat/",
            f"/chat/sessions/{made['session'].pk}/",
            "/api/docs",
        ]
    )
    rows, links_seen = [], {}
    for path in paths:
        for width in WIDTHS:
            before = len(problems.items)
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(hq_server + path)
            page.wait_for_load_state("networkidle")
            wide = page.evaluate(TOO_WIDE) + page.evaluate(CHARTS)
            if width >= 1440:  # on a desktop nothing hides behind a sideways scroll (a clipped Cancel)
                wide += page.evaluate(SCROLLS)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if width in (390, 1440):
                screenshot(page, f"walk-{path.strip('/').replace('/', '-') or 'overview'}-{width}")
            outcomes = check_outcomes(page, path)
            links = 0
            if path == "/" and width == 1440:
                for href in page.evaluate(LINKS, "main a[href], #hq-activity a[href]"):
                    links_seen[href] = None
                links = len(links_seen)
            rows.append((path, width, max(overflow, 0), wide, len(problems.items) - before, links, outcomes))
    # Every link in the feed and on the Overview opens a page with its object.
    broken = []
    for href in links_seen:
        answer = page.request.get(hq_server + href.split("#")[0])
        if answer.status >= 400:
            broken.append(f"{href}: HTTP {answer.status}")
    table = ["| page | width | overflow px | too wide | console errors | links checked | outcomes checked |"]
    table += ["|---|---|---|---|---|---|---|"]
    table += [
        f"| {p} | {w} | {o} | {'; '.join(wd) or '–'} | {c} | {lk or ''} | {oc} |"
        for p, w, o, wd, c, lk, oc in rows
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "walk.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    assert not broken, broken
    failures = [f"{p} at {w} px: {wd}" for p, w, o, wd, *_ in rows if wd or o > 0]
    assert not failures, "\n".join(failures)
    assert not problems.items, "\n".join(problems.items)
    assert any(oc for *_, oc in rows), "no outcome word was checked"
