"""The status an area reports for its Overview line: data only, so services can build it without
importing the presentation code that renders it (``juggernaut.hq``)."""

from dataclasses import dataclass


@dataclass
class AreaStatus:
    state: str  # ok | busy | idle | warn | error | off | empty
    text: str
    detail: str = ""
