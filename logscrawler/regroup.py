"""Carry stored fingerprints over a change of the grouping rules (``GROUPING_VERSION``).

A template fingerprint keeps its key: its rule did not change, and the store goes on widening it. A
trace fingerprint takes the key its sample gets under the current rules, so the next event of the same
cause lands on the same row, with its id, counts, task and the operator's acknowledge, resolve or
ignore mark. Rows whose samples now share a key are one cause: the later ones merge into the oldest.
Kept free of the app's models so a migration can run it on its historical models.
"""

from django.db.models import F

from logscrawler.fingerprint import GROUPING_VERSION, Fingerprinter


def fingerprints_regroup(fingerprint_model, occurrence_model, line_model, minute_model) -> int:
    """Bring every live fingerprint of an older version to the current one; returns the rows merged."""
    merged = 0
    stale = fingerprint_model.objects.filter(merged_into__isnull=True).exclude(
        grouping_version=GROUPING_VERSION
    )
    for row in stale.order_by("service_id", "first_seen", "pk"):
        if row.tokens:
            row.grouping_version = GROUPING_VERSION
            row.save(update_fields=["grouping_version"])
            continue
        key = Fingerprinter(raw=True).fingerprint(row.sample).id
        twin = (
            fingerprint_model.objects.filter(service_id=row.service_id, key=key, merged_into__isnull=True)
            .exclude(pk=row.pk)
            .first()
        )
        if twin is None:
            row.key, row.grouping_version = key, GROUPING_VERSION
            row.save(update_fields=["key", "grouping_version"])
            continue
        # the older row of one cause keeps its id and mark; the other's history moves to it
        occurrence_model.objects.filter(fingerprint=row).update(fingerprint=twin)
        line_model.objects.filter(fingerprint=row).update(fingerprint=twin)
        for minute in minute_model.objects.filter(fingerprint=row):
            if not minute_model.objects.filter(fingerprint=twin, minute=minute.minute).update(
                count=F("count") + minute.count
            ):
                minute_model.objects.create(
                    fingerprint=twin, service_id=row.service_id, minute=minute.minute, count=minute.count
                )
            minute.delete()
        fingerprint_model.objects.filter(pk=twin.pk).update(count=F("count") + row.count)
        row.merged_into, row.grouping_version = twin, GROUPING_VERSION
        row.save(update_fields=["merged_into", "grouping_version"])
        merged += 1
    return merged
