"""The Overview's areas: one live status line each, registered by the app that owns the area.

An app registers its area (label, topics, status provider, page) in its ``AppConfig.ready()``, so the
kernel names none; a switched-off app's area has no line. The HQ websocket re-renders an area's line when an event arrives on one of its topics.
"""

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from django.apps import apps
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse

from juggernaut.areas import AreaStatus
from juggernaut.features import feature_enabled
from juggernaut.feed import feed_items
from juggernaut.models import Event


@dataclass
class Area:
    key: str
    label: str
    topics: list[str]
    provider: Callable[..., AreaStatus]
    app: str  # the label of the app that registered it: its switch hides the area
    url_name: str | None = None
    per_viewer: bool = False  # the provider takes the viewer: the line says what is theirs
    nav_order: int = 100

    @property
    def url(self) -> str:
        if self.url_name:
            try:
                return reverse(self.url_name)
            except NoReverseMatch:
                pass
        return reverse("area", kwargs={"key": self.key})

    def status(self, viewer=None) -> AreaStatus:
        """The line as ``viewer`` may see it (None: the whole system, for internal callers)."""
        try:
            return self.provider(viewer) if self.per_viewer else self.provider()
        except Exception as exc:  # a broken area must not take the Overview down with it
            return AreaStatus("error", f"Status unavailable: {exc.__class__.__name__}")


class AreaRegistry(Mapping[str, Area]):
    """The registered areas, in registration order (``INSTALLED_APPS`` order, as ``ready()`` runs),
    showing only those whose app is switched on."""

    def __init__(self) -> None:
        self._areas: dict[str, Area] = {}

    def add(self, area: Area) -> None:
        self._areas[area.key] = area

    def __getitem__(self, key: str) -> Area:
        area = self._areas[key]
        if not feature_enabled(area.app):
            raise KeyError(key)
        return area

    def __iter__(self) -> Iterator[str]:
        return (key for key, area in self._areas.items() if feature_enabled(area.app))

    def __len__(self) -> int:
        return sum(1 for _ in self)


AREAS = AreaRegistry()

ACTIVITY_TOPIC = "hq"
ACTIVITY_LIMIT = 25


# What created a task ({"type": ..., "id": ...}) -> (url name taking the id, label): apps register theirs.
ORIGINS: dict[str, tuple[str, str]] = {}


def origin_register(kind: str, url_name: str, label: str) -> None:
    """Let pages link a task's origin of type ``kind`` to its page (call from ``AppConfig.ready``)."""
    ORIGINS[kind] = (url_name, label)


def origin_link(origin: dict) -> tuple[str, str] | None:
    """(url, words) for a task's origin, or None when no app knows its type or it has no id."""
    kind, pk = (origin or {}).get("type"), (origin or {}).get("id")
    if kind not in ORIGINS or not isinstance(pk, int) or isinstance(pk, bool):
        return None
    url_name, label = ORIGINS[kind]
    return reverse(url_name, args=[pk]), f"{label} #{pk}"


def area_register(
    key: str,
    provider: Callable[..., AreaStatus],
    *,
    label: str,
    url_name: str | None = None,
    topics: list[str] | None = None,
    per_viewer: bool = False,
    nav_order: int = 100,
) -> None:
    """Add an app's area to the Overview: its live status line (``provider``), its page and its
    place in the navigation (call from ``AppConfig.ready``). The line follows the topic ``key`` and
    any other ``topics``. The app is the one that holds ``provider``; switched off, its area is gone.

    With ``per_viewer``, ``provider(viewer)`` gets the user looking (None for internal callers), for
    an area whose objects belong to their owners; the Overview is then rendered per viewer."""
    config = apps.get_containing_app_config(provider.__module__)
    if config is None:
        raise ValueError(f"area {key!r}: its provider belongs to no installed app")
    AREAS.add(
        Area(
            key,
            label,
            sorted({key, *topics}) if topics else [key],
            provider,
            config.label,
            url_name,
            per_viewer,
            nav_order,
        )
    )


def areas_navigation() -> list[Area]:
    """The areas in navigation order."""
    return sorted(AREAS.values(), key=lambda area: area.nav_order)


@dataclass
class FragmentRenderer:
    topic: str
    render: Callable[[list[dict]], str]
    resync: Callable[[], str] | None = None
    page: str | None = None  # the page (nav key) whose fragments these are; None: every page
    timed: Callable[[], str] | None = None  # fragments that can change by the clock alone
    # A family of pages and topics: ``topic`` and ``page`` are prefixes (``chat.run.``, ``chat-``) and
    # every callable gets the page's name as its last argument (``render(envelopes, page)``).
    family: bool = False
    # The fragments show what belongs to the viewer: every callable gets ``viewer=<user>``, and the
    # page is rendered once per viewer instead of once for all.
    per_viewer: bool = False

    def serves(self, page: str | None) -> bool:
        if self.family:
            return bool(page and self.page and page.startswith(self.page))
        return self.page is None or self.page == page

    def for_topic(self, topic: str) -> bool:
        return topic.startswith(self.topic) if self.family else topic == self.topic


FRAGMENTS: dict[str, list[FragmentRenderer]] = {}
# Pages that follow topics of their own (a chat session's runs): page prefix -> topics(user, page).
PAGE_TOPICS: dict[str, Callable[[object, str], list[str]]] = {}


def page_topics_register(prefix: str, topics: Callable[[object, str], list[str]]) -> None:
    """Let the pages named ``prefix…`` follow topics that depend on the page and its viewer (call from
    ``ready``). The HQ websocket asks again whenever an event arrives on another of its topics, so a
    page starts following a new run as soon as the run is announced."""
    PAGE_TOPICS[prefix] = topics


def page_topics(user, page: str | None) -> list[str]:
    for prefix, topics in PAGE_TOPICS.items():
        if page and page.startswith(prefix):
            return topics(user, page)
    return []


def fragments_register(
    topic: str,
    render: Callable[[list[dict]], str],
    *,
    resync: Callable[[], str] | None = None,
    page: str | None = None,
    timed: Callable[[], str] | None = None,
    family: bool = False,
    per_viewer: bool = False,
) -> None:
    """Let an app re-render its own page's fragments for events on ``topic`` (call from ``ready``).

    ``render(envelopes)`` returns out-of-band fragments (top-level elements with stable ids), which
    the HQ websocket sends to the pages named by ``page`` (all when None), so a page never pays
    for another page's queries. ``resync()`` returns the same fragments in their current state,
    sent on every (re)connect. ``timed()`` returns the fragments whose truth can change by time
    alone (a worker falling silent); open pages re-render them every ``HQ_REFRESH_SECONDS``.
    With ``family``, ``topic`` and ``page`` are prefixes and each callable also gets the page's name.
    With ``per_viewer``, each callable also gets ``viewer=`` (the user looking at the page).
    """
    FRAGMENTS.setdefault(topic, [])
    FRAGMENTS[topic] = [r for r in FRAGMENTS[topic] if r.render is not render] + [
        FragmentRenderer(topic, render, resync, page, timed, family, per_viewer)
    ]


def _renderers(topic: str, page: str | None) -> list[FragmentRenderer]:
    return [r for r in FRAGMENTS.get(topic, []) if r.serves(page)]


def _call(r: FragmentRenderer, fn: Callable, page: str | None, viewer, *args) -> Callable[[], str]:
    args = (*args, page) if r.family else args
    kwargs = {"viewer": viewer} if r.per_viewer else {}
    return lambda: fn(*args, **kwargs)


def viewer_key(page: str | None, viewer, envelopes: list[dict] | None = None) -> int | None:
    """Whom a render of ``page`` is for: None when every viewer sees the same (one render shared by
    every socket of the page), else the viewer's id. For a batch of ``envelopes``, only what the batch
    touches counts: an engine event on the Overview is one render for everyone, even though the
    Overview's code-health line is each viewer's own."""
    topics = None if envelopes is None else {e["topic"] for e in envelopes}
    mine = page == OVERVIEW and any(
        area.per_viewer and (topics is None or topics & set(area.topics)) for area in AREAS.values()
    )
    mine = mine or any(
        r.per_viewer and (topics is None or any(r.for_topic(t) for t in topics))
        for rs in FRAGMENTS.values()
        for r in rs
        if r.serves(page)
    )
    return getattr(viewer, "pk", None) if mine else None


def _fragments_safe(call: Callable[[], str], topic: str) -> str:
    try:
        return call() or ""
    except Exception:  # one app's broken fragment must not stop the Overview's live updates
        logging.getLogger(__name__).exception("fragment renderer for %s failed", topic)
        return ""


def live_topics() -> list[str]:
    topics = {ACTIVITY_TOPIC} | {t for t, rs in FRAGMENTS.items() if not all(r.family for r in rs)}
    for area in AREAS.values():
        topics.update(area.topics)
    return sorted(topics)


def areas_context(viewer=None) -> list[dict]:
    return [{"area": area, "status": area.status(viewer)} for area in AREAS.values()]


def render_line(area: Area, *, oob: bool = False, viewer=None) -> str:
    return render_to_string(
        "juggernaut/_area_line.html", {"item": {"area": area, "status": area.status(viewer)}, "oob": oob}
    )


def render_flash(*, ok: str | None = None, error: str | None = None) -> str:
    """The flash line, out-of-band: what an htmx action answers (htmx swaps nothing on a 4xx, so a
    refusal is a 200 whose flash says why; the JSON API gives the real 4xx)."""
    return render_to_string("juggernaut/_flash.html", {"ok": ok or None, "error": error or None, "oob": True})


def render_lines(viewer=None) -> str:
    """Every area's status line, out-of-band (an action's answer on the Overview)."""
    return "".join(render_line(area, oob=True, viewer=viewer) for area in AREAS.values())


def recent_activity(limit: int = ACTIVITY_LIMIT) -> list[dict]:
    """The feed's latest items (see ``juggernaut.feed``), newest first."""
    topics = live_topics()
    rows = Event.objects.filter(topic__in=topics).order_by("-ts", "-id")[:limit]
    return feed_items([e.envelope() for e in rows])


OVERVIEW = "overview"


def render_resync(page: str | None = OVERVIEW, viewer=None) -> str:
    """Every live fragment of ``page``, as out-of-band swaps (sent on each ws connect)."""
    parts = []
    if page == OVERVIEW:
        parts = [render_lines(viewer)]
        parts.append(
            render_to_string("juggernaut/_activity.html", {"events": recent_activity(), "oob": True})
        )
    for topic in FRAGMENTS:
        parts += [
            _fragments_safe(_call(r, r.resync, page, viewer), topic)
            for r in _renderers(topic, page)
            if r.resync
        ]
    return "".join(parts)


def render_timed(page: str | None = OVERVIEW, viewer=None, *, part: str = "all") -> str:
    """The fragments of ``page`` that can change with the clock alone (no event announces them).
    ``part``: ``"shared"`` (what every viewer sees alike), ``"own"`` (the viewer's own), or ``"all"``."""

    def wanted(per_viewer: bool) -> bool:
        return part == "all" or (part == "own") == per_viewer

    parts = []
    if page == OVERVIEW:
        parts = [render_line(a, oob=True, viewer=viewer) for a in AREAS.values() if wanted(a.per_viewer)]
    for topic in FRAGMENTS:
        parts += [
            _fragments_safe(_call(r, r.timed, page, viewer), topic)
            for r in _renderers(topic, page)
            if r.timed and wanted(r.per_viewer)
        ]
    return "".join(parts)


def render_events(envelopes: list[dict], page: str | None = OVERVIEW, viewer=None) -> str:
    """Fragments of ``page`` for a batch of events (on the Overview: touched area lines once each,
    plus new activity items)."""
    parts = []
    if page == OVERVIEW:
        touched = [a for a in AREAS.values() if any(e["topic"] in a.topics for e in envelopes)]
        parts = [render_line(area, oob=True, viewer=viewer) for area in touched]
        items = feed_items(list(reversed(envelopes[-ACTIVITY_LIMIT:])))
        parts.append(render_to_string("juggernaut/_activity_items.html", {"events": items}))
    for topic in FRAGMENTS:
        for r in _renderers(topic, page):
            mine = [e for e in envelopes if r.for_topic(e["topic"])]
            if mine:
                parts.append(_fragments_safe(_call(r, r.render, page, viewer, mine), topic))
    return "".join(parts)
