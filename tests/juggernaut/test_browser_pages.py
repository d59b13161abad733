"""Every HQ page in Chromium at 1440 px and 390 px: no console error, no failed request, no sideways
scroll, and live updates arriving on each. Screenshots go to test-artifacts/ (git-ignored)."""

import pytest
from playwright.sync_api import expect

from juggernaut.engine import services
from juggernaut.events import publish
from tests.conftest import BrowserProblems, in_thread, screenshot

pytestmark = pytest.mark.browser
# The elements that stick out to the right, to name the culprit when a page scrolls sideways.
WIDEST = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)"""


def test_it_opens_every_page_without_a_console_error(signed_in_page, hq_server, alice):
    page = signed_in_page
    alice.is_superuser = True  # the first operator `make run` creates is one; the admin needs it
    alice.save()
    problems = BrowserProblems(page)
    worker = services.worker_register("builtin", capabilities=["timer"])
    failed = services.task_create("Refresh the model catalog", kind="noop", max_attempts=1)
    services.task_claim(worker, incarnation=worker.incarnation)
    long_error = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom'
    services.task_fail(failed.pk, worker_id=worker.pk, incarnation=worker.incarnation, error=long_error)
    services.task_create("Rotate the log files", kind="noop", dedupe_key="rotate-logs")
    services.task_create("Ship release 2.4", kind="noop", needs_approval=True)
    # Every page the nav links to (each area's page, whichever app registered it), plus the rest.
    nav = page.eval_on_selector_all("nav.nav a", "links => links.map(a => a.getAttribute('href'))")
    pages = {
        f"nav-{href.strip('/').replace('/', '-') or 'overview'}": href for href in nav if href != "/admin/"
    }
    pages |= {
        "overview": "/",
        "engine": "/engine/",
        "tasks": "/engine/tasks/?q=rotate",
        "task": f"/engine/tasks/{failed.pk}/",
        "worker": f"/engine/workers/{worker.pk}/",
        "settings": "/settings/",
        "area-chat": "/areas/chat/",
        "admin": "/admin/",
        "admin-tasks": "/admin/engine/task/",
        "admin-task-events": "/admin/engine/taskevent/",
        "admin-events": "/admin/juggernaut/event/",
    }
    for n, (name, path) in enumerate(pages.items()):
        for width in (1440, 390):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(hq_server + path)
            if not path.startswith("/admin/"):
                expect(page.locator("body")).to_have_attribute("data-live", "open")
                in_thread(lambda n=n, w=width: publish("hq", "notice", {"message": f"update {n}-{w}"}))
                in_thread(lambda n=n, w=width: services.task_create(f"Live {n}-{w}", kind="noop"))
                if name == "overview":
                    expect(page.locator("#hq-activity")).to_contain_text(f"update {n}-{width}")
                    ids = page.eval_on_selector_all(
                        "#hq-activity .activity-item", "items => items.map(i => i.id)"
                    )
                    assert len(ids) == len(set(ids)), f"an event shows twice in the feed: {ids}"
                if name == "engine":
                    expect(page.locator("#engine-tasks")).to_contain_text(f"Live {n}-{width}")
            page.wait_for_timeout(300)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            screenshot(page, f"page-{name}-{width}")
            wide = page.evaluate(WIDEST) if overflow > 0 else []
            assert overflow <= 0, f"{path} scrolls sideways by {overflow} px at {width} px: {wide}"
    assert not problems.items, "\n".join(problems.items)
