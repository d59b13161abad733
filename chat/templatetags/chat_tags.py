"""Assistant messages as sanitised Markdown: the model's text is untrusted, so the HTML Markdown makes
of it goes through an allow-list (nh3) before it reaches the page."""

import json

import markdown as md
import nh3
from django import template
from django.utils.safestring import mark_safe

register = template.Library()

TAGS = {
    "p",
    "br",
    "strong",
    "em",
    "code",
    "pre",
    "ul",
    "ol",
    "li",
    "a",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "hr",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "del",
}


@register.filter
def markdown(text: str | None) -> str:
    html = md.markdown(text or "", extensions=["fenced_code", "tables", "sane_lists"], output_format="html")
    clean = nh3.clean(
        html,
        tags=TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)  # noqa: S308 - sanitised by nh3's allow-list just above


@register.filter
def pretty_json(value) -> str:
    """A tool's arguments or result as the model sent or received them (JSON, indented)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
