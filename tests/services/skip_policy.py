"""Skip policy (a pytest plugin listed in ``tests/conftest.py``): a summary of every skipped test at
the end of the run, and under CI (``CI=true``) a skip not named in ``tests/allowed_skips.txt`` fails
the run. A test that quietly skips in CI (a browser that did not install, a service that did not
start, a package missing from the dev extra) would otherwise hide the regression it exists to catch.

``allowed_skips.txt``: one ``fnmatch`` pattern per line matched against ``nodeid: reason``, with a
``#`` comment saying why that skip is expected in CI.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from services.availability import in_ci

ALLOWED = Path(__file__).resolve().parents[1] / "allowed_skips.txt"


def _allowed_patterns() -> list[str]:
    if not ALLOWED.exists():
        return []
    lines = (line.split("#", 1)[0].strip() for line in ALLOWED.read_text().splitlines())
    return [line for line in lines if line]


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _classify(config: pytest.Config) -> tuple[list[tuple[bool, str]], int]:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(reporter, "stats", {}) if reporter is not None else {}
    skipped = [r for r in stats.get("skipped", []) if getattr(r, "when", "") != "teardown"]
    patterns = _allowed_patterns()
    entries = []
    for rep in skipped:
        entry = f"{rep.nodeid}: {_skip_reason(rep)}"
        entries.append((any(fnmatch.fnmatch(entry, p) for p in patterns), entry))
    return entries, sum(1 for ok, _ in entries if not ok)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI a skip outside the allowed list fails the run (exit status 1)."""
    _, bad = _classify(session.config)
    if bad and in_ci() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    entries, bad = _classify(config)
    if not entries:
        return
    terminalreporter.write_sep(
        "-", f"skip summary: {len(entries)} skipped, {bad} not in tests/allowed_skips.txt"
    )
    for ok, entry in entries:
        terminalreporter.write_line(("  allowed  " if ok else "  SKIPPED  ") + entry)
    if bad and in_ci():
        terminalreporter.write_line(
            f"CI: {bad} test(s) skipped that must run in CI: the run fails (fix the cause, or list "
            "them in tests/allowed_skips.txt with the reason)"
        )
