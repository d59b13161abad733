"""Template helpers every HQ page uses: ``{% load hq %}``.

- ``{% ago when %}``: "3 min ago", exact UTC on hover; counts up in the browser by itself.
- ``{% for_duration since %}``: "3 min" since ``since`` (e.g. "waiting 3 min"), counting up too.
- ``{% chart spec %}``: the one chart component (see ``juggernaut.charts``).
"""

from datetime import datetime

from django import template
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html

from juggernaut.timefmt import age_text, duration_text, exact_utc

register = template.Library()


def _time(when: datetime | None, text: str, mode: str):
    return format_html(
        '<time datetime="{}" title="{}" data-age="{}">{}</time>',
        when.isoformat(),
        exact_utc(when),
        mode,
        text,
    )


@register.simple_tag
def ago(when: datetime | None, now: datetime | None = None):
    """A relative time that keeps counting in the browser; empty for None."""
    if when is None:
        return ""
    return _time(when, age_text(when, now or timezone.now()), "ago")


@register.simple_tag
def for_duration(since: datetime | None, now: datetime | None = None):
    """How long since ``since``, without "ago" (e.g. "waiting 3 min"), counting up in the browser."""
    if since is None:
        return ""
    return _time(since, duration_text((now or timezone.now()) - since), "for")


@register.simple_tag
def chart(spec):
    """Render a chart built by ``juggernaut.charts`` with the shared SVG fragment."""
    return render_to_string("components/_chart.html", {"chart": spec})


@register.filter
def first_line(text: str | None) -> str:
    """The first non-empty line of a (possibly multi-line) error, for a collapsed view."""
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""
