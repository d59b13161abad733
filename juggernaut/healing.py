"""The self-heal registry: read-only checks and safe actions, declared by the app that owns them.

Each app declares its own in ``<app>/selfheal.py`` (found by ``juggernaut.discovery``, like
``handlers.py`` and ``tools.py``), so the self-heal app runs whatever it is given and never reaches
into another app's tables:

- ``@check("queue")``: ``func(now) -> list[Finding]``; it only reads. It runs in its own thread with
  its own timeout, so it must not rely on the caller's transaction.
- ``@action("release_expired_leases", touches="engine_tasks", cap=200, reversible=False, auto=True)``:
  ``func(*, dry_run, cap, now) -> Outcome``; with ``dry_run`` it reports exactly what it would change
  and changes nothing; it never touches more than ``cap`` rows. An action whose aim is only seen later
  (a requeued task that must still run and succeed) lists what it handed on in ``Outcome.watch`` and
  names a ``settle`` function that judges it: until then the repair is "in progress", never "fixed".

A finding names the action that would fix it: a registered safe action (one click) or a manual step
(the command or page an operator uses).
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from juggernaut.discovery import app_modules
from juggernaut.features import module_enabled

SEVERITIES = ("critical", "warning", "info")


@dataclass(frozen=True)
class Fix:
    """How a finding goes away: ``safe`` names a registered action, ``manual`` names a command."""

    kind: str  # safe | manual
    name: str
    description: str

    @classmethod
    def safe(cls, name: str, description: str) -> "Fix":
        return cls("safe", name, description)

    @classmethod
    def manual(cls, command: str, description: str) -> "Fix":
        return cls("manual", command, description)


@dataclass
class Finding:
    check: str
    severity: str  # critical | warning | info
    title: str
    evidence: dict = field(default_factory=dict)
    action: Fix | None = None
    code: str = ""  # stable identity across runs (verification compares on it)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
        self.code = self.code or self.title

    @property
    def key(self) -> str:
        return f"{self.check}:{self.code}"

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("code")
        return data


@dataclass
class Outcome:
    """What an action did (or, in a dry run, would do): ``changes`` lists each row in words."""

    touched: int
    output: str
    changes: list[str] = field(default_factory=list)
    fixed: bool = True  # False: the action knows it could not fix its fault (says why in output)
    watch: list = field(default_factory=list)  # what it handed on (task ids); settle() judges them later


SETTLED = ("in_progress", "fixed", "did_not_help")


CheckFunc = Callable[[datetime], list[Finding]]
ActionFunc = Callable[..., Outcome]
# settle(watch) -> (one of SETTLED, the reason in words)
SettleFunc = Callable[[list], tuple[str, str]]


@dataclass(frozen=True)
class Check:
    name: str
    func: CheckFunc
    description: str
    timeout: float | None = None  # seconds; None: SELFHEAL_CHECK_TIMEOUT_SECONDS


@dataclass(frozen=True)
class SafeAction:
    name: str
    func: ActionFunc
    description: str
    touches: str  # the table or thing it changes
    cap: int  # blast radius: at most this many rows per run
    reversible: bool
    auto: bool  # may auto-heal run it without an operator
    label: str = ""  # its name in words, for buttons and history ("Requeue failed tasks")
    settle: SettleFunc | None = None


CHECKS: dict[str, Check] = {}
ACTIONS: dict[str, SafeAction] = {}


def _doc(func: Callable) -> str:
    return (func.__doc__ or func.__name__).strip().splitlines()[0]


def check(name: str, *, timeout: float | None = None) -> Callable[[CheckFunc], CheckFunc]:
    """Register a read-only check under ``name`` (its docstring's first line describes it)."""

    def mark(func: CheckFunc) -> CheckFunc:
        CHECKS[name] = Check(name, func, _doc(func), timeout)
        return func

    return mark


def action(
    name: str,
    *,
    touches: str,
    cap: int,
    reversible: bool,
    auto: bool = False,
    label: str = "",
    settle: SettleFunc | None = None,
) -> Callable[[ActionFunc], ActionFunc]:
    """Register a safe action under ``name``: what it touches, its per-run row cap, whether it can
    be undone, whether auto-heal may run it unattended, its name in words, and (for an action whose
    effect is only seen later) how to judge what it handed on."""

    def mark(func: ActionFunc) -> ActionFunc:
        words = label or name.replace("_", " ").capitalize()
        ACTIONS[name] = SafeAction(name, func, _doc(func), touches, cap, reversible, auto, words, settle)
        return func

    return mark


def registry_load() -> tuple[dict[str, Check], dict[str, SafeAction]]:
    """Import every switched-on app's ``selfheal.py`` (once; later calls are cheap) and return its
    checks and actions (those of an app switched off since it was imported are left out)."""
    app_modules("selfheal")
    return (
        {name: c for name, c in CHECKS.items() if module_enabled(c.func.__module__)},
        {name: a for name, a in ACTIONS.items() if module_enabled(a.func.__module__)},
    )


def action_label(name: str) -> str:
    """A registered action's name in words (the name itself when it is not registered)."""
    _, actions = registry_load()
    return actions[name].label if name in actions else name


def as_plain(value: Any) -> Any:
    """Findings and fixes as JSON-ready dicts (a list of findings stays a list)."""
    if isinstance(value, list):
        return [as_plain(v) for v in value]
    return value.as_dict() if isinstance(value, Finding) else value
