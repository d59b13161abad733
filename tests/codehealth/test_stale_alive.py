"""Code that real projects keep alive without naming it plainly is never a confident stale finding,
while dead code planted beside it still is."""

from pathlib import Path

from codehealth.findings import CONFIDENT
from codehealth.stale import find_stale

REPO = Path(__file__).parent / "fixtures" / "alive"

PLANTED_DEAD = {
    ("function", "stale_formatter"),
    ("function", "never_called_anywhere"),
    ("class", "Archive"),
    ("method", "Archive.compact"),
    ("import", "json"),
}
# Each kept alive by one way of naming things that is not a plain load of the name.
ALIVE = {
    "Any",  # *args: Any
    "Decimal",  # **kwargs: Decimal
    "Optional",  # a variable's annotation
    "Fraction",  # a string return annotation, imported under TYPE_CHECKING
    "PurePath",  # a string argument annotation
    "TYPE_CHECKING",
    "Callable",
    "QuoteConverter.to_url",  # Django's URL resolver calls it
    "QuoteConverter.to_python",
    "flag_saved",  # @receiver imported as on_signal
    "audit_trail",  # a registering decorator from another module
    "on_ping",  # getattr(handlers, "on_ping")
    "exported_only",  # __all__
    "load_basic",  # getattr(module, "load_" + key)
    "emails/welcome-subject.html",  # f"emails/{name}-subject.html"
    "emails/welcome-body.html",  # "emails/%s-body.html" % name
    "sudo_required",
    "where",
    "ready",
}


def _confident():
    return {(f.category, f.name) for f in find_stale(REPO) if f.confidence >= CONFIDENT}


def test_it_flags_none_of_the_live_code_confident():
    assert {name for _category, name in _confident()} & ALIVE == set()


def test_it_still_finds_the_planted_dead_code_confident():
    assert _confident() == PLANTED_DEAD


def test_it_shows_what_a_computed_name_may_reach_as_uncertain_with_the_reason():
    uncertain = {f.name: f for f in find_stale(REPO) if f.confidence < CONFIDENT}
    assert {"load_basic", "emails/welcome-subject.html", "emails/welcome-body.html"} <= set(uncertain)
    assert "built at run time" in uncertain["emails/welcome-subject.html"].reason
    assert not any(f.fixable for f in uncertain.values())


def test_only_a_confident_unused_import_is_fixable():
    fixable = {f.name for f in find_stale(REPO) if f.fixable}
    assert fixable == {"json"}


def test_an_import_used_only_in_star_args_annotations_is_not_flagged(tmp_path):
    (tmp_path / "deco.py").write_text(
        "from typing import Any\n\n\ndef wrap(*args: Any, **kwargs: Any) -> None:\n    return None\n\n\n"
        "wrap()\n"
    )
    assert [f for f in find_stale(tmp_path) if f.category == "import"] == []
