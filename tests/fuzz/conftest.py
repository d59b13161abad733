"""The fuzzing figures, printed at the end of the run (the closing summary)."""

from tests.fuzz.test_api_fuzz import OPERATIONS, tally


def pytest_terminal_summary(terminalreporter) -> None:
    if tally["cases"]:
        terminalreporter.write_line(
            f"API fuzzing: {len(OPERATIONS)} operations, {tally['cases']} cases run, "
            f"{tally['server_errors']} server errors",
            bold=True,
        )
