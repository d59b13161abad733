"""Placeholder; replaced below."""


def render_events(envelopes: list[dict]) -> str:
    return ""


def render_resync() -> str:
    return ""
