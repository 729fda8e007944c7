"""Two guards on what the default run (`pytest`, as `make test` and CI call it) really ran.

- Every folder under the test paths that holds test files must contribute a collected test:
  pytest skips some folder names silently (`build` was one, through `norecursedirs`), and a
  folder that collects nothing proves nothing.
- The skips are counted by reason at the end, so a missing part (pgbouncer) cannot hide in
  a long summary.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from _pytest.terminal import TerminalReporter

IGNORED_PARTS = {"__pycache__", "node_modules"}


def test_folders(root: Path, testpaths: list[str]) -> set[Path]:
    """Folders holding `test_*.py` files below the test paths (hidden and vendored ones aside)."""
    folders = set()
    for testpath in testpaths:
        for path in (root / testpath).rglob("test_*.py"):
            relative = path.relative_to(root).parts
            if not any(part.startswith(".") or part in IGNORED_PARTS for part in relative):
                folders.add(path.parent)
    return folders


def is_default_run(config: pytest.Config) -> bool:
    """`pytest` with no paths given (what CI runs), not a run narrowed to some tests."""
    narrowed = any(config.getoption(name, None) for name in ("lf", "ignore", "ignore_glob"))
    return config.args_source is pytest.Config.ArgsSource.TESTPATHS and not narrowed


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not is_default_run(config):
        return
    collected = {item.path.parent for item in items}
    silent = sorted(
        folder
        for folder in test_folders(config.rootpath, config.getini("testpaths"))
        if folder not in collected
    )
    if silent:
        names = ", ".join(str(folder.relative_to(config.rootpath)) for folder in silent)
        raise pytest.UsageError(
            f"these test folders collected no test: {names} "
            "(a name in norecursedirs, such as `build`, or a collection filter?)"
        )


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: Counter[str] = Counter()
    for report in skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    terminalreporter.section("skips by reason")
    for reason, count in reasons.most_common():
        terminalreporter.write_line(f"{count:5d}  {reason}")
