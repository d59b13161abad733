"""django-q2 entry points of the logs crawler (thin: they call the crawl and prune workflows)."""

import logging

from logscrawler import crawler, services

log = logging.getLogger(__name__)


def logs_crawl() -> str:
    run = crawler.crawl_run()
    if run is None:
        return "another crawl is running"
    log.info("crawl %s: %d lines, %d requests", run.status, run.lines, run.requests)
    return run.status


def logs_prune() -> int:
    deleted = services.logs_prune()
    log.info("pruned %d old log lines", deleted)
    return deleted
