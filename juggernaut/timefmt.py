"""The HQ's one way of writing a time: a short age or duration, with the exact UTC time on hover.

``static/js/hq.js`` words ages the same way (keep the two in step), so an age rendered here keeps
counting in the browser without a round trip.
"""

from datetime import UTC, datetime, timedelta


def duration_text(delta: timedelta | float | int) -> str:
    """``45 s``, ``3 min``, ``2 h 5 min``, ``3 d 4 h`` (whole units, rounded down; never negative)."""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(seconds // 3600, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def age_text(when: datetime, now: datetime) -> str:
    """``3 min ago`` for the past, ``in 20 s`` for the future."""
    if when > now:
        return f"in {duration_text(when - now)}"
    return f"{duration_text(now - when)} ago"


def exact_utc(when: datetime) -> str:
    """``2026-11-25 11:59:57 UTC``: the one exact format, shown on hover."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
