"""django-q2 entry points of the logs crawler (thin: they call the crawl and prune workflows)."""

import logging

from django.conf import settings
from django_q.models import Schedule

from juggernaut.schedules import Declared
from logscrawler import crawler, services

log = logging.getLogger(__name__)


def logs_crawl() -> str:
    try:
        run = crawler.crawl_run()
    except crawler.CrawlLeaseLost as exc:
        log.warning("%s; this cycle stopped", exc)
        return "taken over"
    if run is None:
        return "another crawl is running"
    log.info("crawl %s: %d lines, %d requests", run.status, run.lines, run.requests)
    return run.status


def logs_prune() -> int:
    deleted = services.logs_prune()
    log.info("pruned %d old log lines", deleted)
    return deleted


# What the jobs cluster runs on its own (synced by ``manage.py sync_schedules``).
SCHEDULES = [
    Declared("hq:logs-crawl", logs_crawl, Schedule.MINUTES, minutes=settings.LOGS_CRAWL_MINUTES),
    Declared("hq:logs-prune", logs_prune, Schedule.DAILY),
]
