from django import template

from routing.services import usd as usd_text

register = template.Library()


@register.filter
def usd(value) -> str:
    """Money in USD for people (``$1.20``, ``$0.0042``)."""
    return usd_text(value)
