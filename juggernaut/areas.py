"""The status an area reports for its Overview line: data only, so services can build it without
importing the presentation code that renders it (``juggernaut.hq``)."""

from dataclasses import dataclass, field


@dataclass
class Action:
    """The next step for a finding: a button that POSTs, a command to copy, or a page to open."""

    label: str
    post: str = ""
    command: str = ""
    href: str = ""


@dataclass
class AreaStatus:
    state: str  # ok | busy | idle | warn | error | off | empty
    text: str
    detail: str = ""
    actions: list[Action] = field(default_factory=list)
    attention: int = 0  # how many things wait for a human (shown as a count on the line)
