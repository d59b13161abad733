"""django-q2 entry points of the core app (thin: they call services)."""

import logging

from juggernaut import services

log = logging.getLogger(__name__)


def events_prune() -> int:
    deleted = services.events_prune()
    log.info("pruned %d old events", deleted)
    return deleted
