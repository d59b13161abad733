"""The jobs cluster's broker: django-q2's ORM broker, made to ride out a database restart.

django-q2's pusher treats any error from ``dequeue`` as a dead broker: it sleeps 10 s and exits, and the
cluster starts a new one, so every database restart stopped job pickup for 10 s or more after the
server was back. Here a database error while polling is one failed poll: logged, and tried again after
the poll interval on a fresh connection (the pool checks it before lending it).
"""

import logging
from time import sleep

from django.db import DatabaseError, close_old_connections
from django_q.brokers.orm import ORM
from django_q.conf import Conf

log = logging.getLogger(__name__)


class HealingORM(ORM):
    def dequeue(self):
        try:
            return super().dequeue()
        except DatabaseError as exc:
            log.warning("jobs: polling the queue failed on the database (%s); polling again", exc)
            close_old_connections()
            sleep(Conf.POLL)
            return None
