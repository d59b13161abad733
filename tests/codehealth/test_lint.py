import json

from codehealth.lint import parse_annotations, parse_eslint_json, parse_ruff_json, parse_tsc, run_ruff

RUFF = [
    {
        "code": "F401",
        "message": "`os` imported but unused",
        "filename": "/home/runner/work/app/app/a/b.py",
        "location": {"row": 3, "column": 8},
        "end_location": {"row": 3, "column": 10},
        "fix": {"applicability": "safe", "message": "Remove unused import", "edits": []},
        "url": "https://docs.astral.sh/ruff/rules/unused-import",
    },
    {
        "code": "B009",
        "message": "Do not call getattr",
        "filename": "/src/x.py",
        "location": {"row": 1, "column": 1},
        "fix": {"applicability": "unsafe", "message": "Replace", "edits": []},
    },
    {
        "code": None,
        "message": "SyntaxError: bad",
        "filename": "/src/y.py",
        "location": {"row": 2, "column": 1},
        "fix": None,
    },
]


def test_ruff_json_keeps_only_safe_fixes_as_fixable():
    findings = parse_ruff_json(json.dumps(RUFF), root="/src")
    assert [(f.path, f.line, f.name, f.fixable) for f in findings] == [
        ("a/b.py", 3, "F401", True),
        ("x.py", 1, "B009", False),
        ("y.py", 2, "syntax-error", False),
    ]


def test_eslint_json():
    text = json.dumps(
        [
            {
                "filePath": "/repo/web/app/page.tsx",
                "messages": [
                    {
                        "ruleId": "no-unused-vars",
                        "severity": 2,
                        "message": "'x' is unused",
                        "line": 4,
                        "column": 7,
                    },
                    {
                        "ruleId": "semi",
                        "severity": 1,
                        "message": "Missing semicolon",
                        "line": 5,
                        "column": 9,
                        "fix": {"range": [1, 2], "text": ";"},
                    },
                ],
            }
        ]
    )
    findings = parse_eslint_json(text, root="/repo")
    assert [(f.path, f.line, f.name, f.fixable, f.extra["severity"]) for f in findings] == [
        ("web/app/page.tsx", 4, "no-unused-vars", False, "error"),
        ("web/app/page.tsx", 5, "semi", True, "warning"),
    ]


def test_tsc_plain_and_pretty_output():
    text = (
        "app/page.tsx(12,5): error TS2322: Type 'string' is not assignable to type 'number'.\n"
        "\x1b[96mlib/api.ts\x1b[0m:\x1b[93m3\x1b[0m:\x1b[93m1\x1b[0m - \x1b[91merror\x1b[0m"
        "\x1b[90m TS2304: \x1b[0mCannot find name 'x'.\n"
        "Found 2 errors in 2 files.\n"
    )
    assert [(f.path, f.line, f.name) for f in parse_tsc(text)] == [
        ("app/page.tsx", 12, "TS2322"),
        ("lib/api.ts", 3, "TS2304"),
    ]


def test_annotations_are_capped_like_githubs():
    annotations = [
        {"path": "a.py", "start_line": i, "message": "m", "annotation_level": "failure"} for i in range(25)
    ]
    assert len(parse_annotations(annotations, tool="ruff")) == 10


def test_ruff_runs_on_a_checkout(tmp_path):
    (tmp_path / "m.py").write_text("import os\n")
    (finding,) = run_ruff(tmp_path)
    assert (finding.path, finding.line, finding.name, finding.fixable) == ("m.py", 1, "F401", True)


def test_a_safe_fix_carries_the_edits_an_auto_pr_applies(tmp_path):
    from codehealth.autopr import edits_apply

    source = "import os\nimport sys\n\nprint(sys.argv)\n"
    (tmp_path / "m.py").write_text(source)
    (finding,) = run_ruff(tmp_path)
    assert finding.extra["edits"], "ruff's safe fix should travel with the finding"
    assert edits_apply(source, finding.extra["edits"]) == "import sys\n\nprint(sys.argv)\n"


def test_a_checkout_that_formats_with_ruff_gets_a_whole_file_reformat_fix(tmp_path):
    from codehealth.autopr import edits_apply
    from codehealth.lint import run_ruff_format

    source = "x = {  'a':1 }\n\n\n\ndef f( y ):\n  return y\n"
    (tmp_path / "m.py").write_text(source)
    (tmp_path / "tidy.py").write_text("x = {'a': 1}\n")  # already as the settings want
    assert run_ruff_format(tmp_path) == []  # the formatter is not this checkout's: not its check, no fix
    (tmp_path / "pyproject.toml").write_text('[tool.ruff.format]\nquote-style = "single"\n')
    (finding,) = run_ruff_format(tmp_path)
    assert (finding.path, finding.name, finding.fixable) == ("m.py", "unformatted", True)
    fixed = edits_apply(source, finding.extra["edits"])
    assert fixed == "x = {'a': 1}\n\n\ndef f(y):\n    return y\n"  # with the repository's own settings


MIGRATION = (
    "from django.db import migrations\n\n\n"
    "class Migration(migrations.Migration):\n"
    "    dependencies = []\n"
    "    operations = []\n"
)


def test_it_lints_a_checkout_without_ruff_configuration_with_ruffs_documented_defaults_only(tmp_path):
    (tmp_path / "app" / "migrations").mkdir(parents=True)
    (tmp_path / "app" / "migrations" / "0001_initial.py").write_text(MIGRATION)  # RUF012 elsewhere
    (tmp_path / "app" / "when.py").write_text(
        "import datetime\nimport os\n\nNOW = datetime.datetime.now(datetime.timezone.utc)\n"
    )  # UP017 elsewhere; F401 is a default rule
    findings = run_ruff(tmp_path)
    assert [(f.path, f.name) for f in findings] == [("app/when.py", "F401")]
    assert findings[0].extra["url"] == "https://docs.astral.sh/ruff/rules/unused-import/"


def test_it_lints_with_the_repositorys_own_selection_ignores_excludes_and_per_file_ignores(tmp_path):
    (tmp_path / "ruff.toml").write_text(
        'exclude = ["migrations"]\nline-length = 20\n[lint]\nselect = ["E", "F", "RUF"]\n'
        'ignore = ["E501"]\n[lint.per-file-ignores]\n"app/__init__.py" = ["F401"]\n'
    )
    (tmp_path / "app" / "migrations").mkdir(parents=True)
    (tmp_path / "app" / "migrations" / "0001_initial.py").write_text(MIGRATION)
    (tmp_path / "app" / "__init__.py").write_text("import os\n")
    (tmp_path / "app" / "forms.py").write_text(
        "import sys\n\n\nclass Form:\n    fields = ['a_rather_long_field_name']\n"
    )
    found = sorted((f.path, f.name) for f in run_ruff(tmp_path))
    assert found == [("app/forms.py", "F401"), ("app/forms.py", "RUF012")]
