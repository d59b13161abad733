"""The fuzzing figures, printed at the end of the run (the closing summary)."""

from tests.fuzz.test_api_fuzz import OPERATIONS, WITH_INPUT, tally


def pytest_terminal_summary(terminalreporter) -> None:
    if tally["cases"]:
        terminalreporter.write_line(
            f"API fuzzing: {len(OPERATIONS)} operations, {tally['cases']} cases run "
            f"({tally['negative']} of them invalid input to {len(WITH_INPUT)} operations), "
            f"{tally['server_errors']} server errors",
            bold=True,
        )
