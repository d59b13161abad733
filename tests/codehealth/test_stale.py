from pathlib import Path

from codehealth.stale import find_stale, stale_tools
from codehealth.stale_refs import build_index

REPO = Path(__file__).parent / "fixtures" / "djrepo"

PLANTED = {
    ("import", "os"),
    ("import", "OrderedDict"),
    ("variable", "unused_total"),
    ("function", "_old_rounding"),
    ("function", "slugify_code"),
    ("class", "LegacyPriceTable"),
    ("method", "PriceFormatter.format_cents_v1"),
    ("method", "Order.recalculate_legacy_discount"),
    ("route", "old-export"),
    ("view", "legacy_invoice"),
    ("template", "shop/promo_banner.html"),
    ("tool", "cancel_everything"),
    ("file", "shop.orphan_utils"),
}
# Code that only looks dead, one entry per way Django and friends keep code alive.
LOOKS_DEAD = {
    "ShopConfig",
    "ready",  # INSTALLED_APPS string, framework hook
    "TimingMiddleware",
    "TokenBackend",
    "cart_count",  # settings strings
    "order_saved",  # @receiver
    "money",
    "shout",
    "shop_tags",  # template filter, tag, {% load %}
    "Command",
    "handle",
    "add_arguments",
    "close_orders",  # management command
    "OrderAdmin",
    "get_queryset",  # admin registration, hook
    "forwards",
    "Migration",
    "0001_initial",  # migrations
    "refund",
    "Helpers.refund",  # getattr with a literal
    "exported_helper",  # __all__
    "__str__",
    "__call__",
    "__init__",
    "save",
    "clean_total",
    "Order.save",
    "Order.clean_total",
    "render_label",
    "Order.render_label",
    "notify",
    "Order.notify",  # template attribute, signal call
    "test_it_builds_an_empty_report",
    "orders",
    "TestPricing",
    "test_rounding",
    "shop_settings",
    "order_status",  # a tool named in __all__
    "signals",  # imported in ready() for its receivers
    "order-list",
    "order-detail",
    "checkout",
    "about",
    "export",
    "action",  # reversed, {% url %}, linked
    "shop/_row.html",
    "shop/base_layout.html",
    "shop/about.html",
    "shop/order_detail_page.html",
    "AboutView",
    "dispatch_by_name",
    "order_list",
    "order_detail",
}


def _found(**kwargs):
    return {(f.category, f.name) for f in find_stale(REPO, **kwargs)}


def test_it_finds_every_planted_dead_item():
    found = _found()
    assert PLANTED - found == set()


def test_it_raises_no_false_alarm_on_code_that_only_looks_dead():
    found = _found()
    assert found - PLANTED == set()
    names = {name.split(".")[-1] for _category, name in found} | {name for _category, name in found}
    assert names & LOOKS_DEAD == set()


def test_each_finding_has_a_confidence_and_a_reason():
    for finding in find_stale(REPO):
        assert 60 <= finding.confidence <= 100
        assert finding.name in finding.reason or finding.name.split(".")[-1] in finding.reason
        assert not finding.path.startswith("/")


def test_unused_imports_are_the_fixable_ones():
    fixable = {f.name for f in find_stale(REPO) if f.fixable}
    assert fixable == {"os", "OrderedDict"}


def test_tools_outside_the_executed_set_are_stale():
    index = build_index(REPO)
    assert {f.name for f in stale_tools(index, {"cancel_everything"})} == {"order_status"}
    assert stale_tools(index, {"cancel_everything", "order_status"}) == []
    (finding,) = stale_tools(index, set())[:1]
    assert finding.confidence == 85 and "never called" in finding.reason


def test_the_confidence_floor_hides_the_uncertain(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("from json import dumps\n")
    (tmp_path / "pkg" / "core.py").write_text("import pkg\n\npkg.VALUE = 1\n")
    imports = [f for f in find_stale(tmp_path, min_confidence=0) if f.category == "import"]
    assert [(f.name, f.confidence) for f in imports] == [("dumps", 40)]  # maybe a re-export
    assert [f for f in find_stale(tmp_path) if f.category == "import"] == []


def test_django_places_keep_only_what_they_expect_and_an_archive_imports_by_package(tmp_path):
    root = tmp_path / "proj-1.0"  # an unpacked archive: its top directory is not a package
    pkg = root / "shop"
    (pkg / "management" / "commands").mkdir(parents=True)
    (pkg / "templatetags").mkdir()
    for folder in (pkg, pkg / "management", pkg / "management" / "commands", pkg / "templatetags"):
        (folder / "__init__.py").write_text("")
    commands = pkg / "management" / "commands"
    (commands / "sync_orders.py").write_text(
        "from django.core.management.base import BaseCommand\n\n\n"
        "class Command(BaseCommand):\n    def handle(self, *args, **options):\n"
        "        pass\n"
    )
    (commands / "helpers_left_behind.py").write_text("def helper():\n    return 1\n")  # not a command
    (pkg / "templatetags" / "shop_extras.py").write_text(
        "from django import template\n\nregister = template.Library()\n"
    )
    (pkg / "templatetags" / "scratch.py").write_text("X = 1\n")  # not a tag library
    (pkg / "apps.py").write_text(
        "from django.apps import AppConfig\n\n\nclass ShopConfig(AppConfig):\n    name = 'shop'\n\n\n"
        "class LeftoverTable:\n    size = 1\n"
    )
    (pkg / "formatting.py").write_text("def money(value):\n    return value\n")
    (pkg / "views.py").write_text("from shop.formatting import money\n\nprint(money(1))\n")
    (pkg / "health.py").write_text(
        "from juggernaut.healing import check\n\n\n@check('disk')\ndef disk_check(now):\n    return []\n"
    )
    (pkg / "urls.py").write_text("import shop.health  # noqa: F401\n")
    found = {(f.category, f.name) for f in find_stale(tmp_path)}
    assert ("file", "shop.management.commands.helpers_left_behind") in found
    assert ("file", "shop.templatetags.scratch") in found
    assert ("class", "LeftoverTable") in found  # apps.py keeps its AppConfig, not every class in it
    alive = {
        "shop.management.commands.sync_orders",
        "shop.templatetags.shop_extras",
        "ShopConfig",
        "shop.formatting",
        "money",
        "disk_check",
        "shop.health",
    }
    assert not {name for _, name in found} & alive, found
    assert not any("proj-1.0" in name for _, name in found)  # modules are named as they are imported
