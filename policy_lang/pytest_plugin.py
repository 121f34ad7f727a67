"""pytest plugin (entry point ``pytest11``): collect ``*.policytest.toml`` files, one item per case.

The entry point has the module's name, so ``pytest -p policy_lang.pytest_plugin`` (needed only where
entry points are not autoloaded) and the installed entry point are one plugin, registered once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from floodlight_trust.errors import FtrustError
from policy_lang.testing import TEST_SUFFIX, Case, TestFile, load_test_file, run_case


class PolicyCaseFailed(Exception):
    pass


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.name.endswith(TEST_SUFFIX):
        return PolicyTestFile.from_parent(parent, path=file_path)
    return None


class PolicyTestFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        try:
            test = load_test_file(self.path)
        except FtrustError as e:
            raise self.CollectError(f"policy test file: {e}") from None
        for case in test.cases:
            yield PolicyCaseItem.from_parent(self, name=case.name, test=test, case=case)


class PolicyCaseItem(pytest.Item):
    def __init__(self, *, test: TestFile, case: Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.test = test
        self.case = case

    def runtest(self) -> None:
        result = run_case(self.test, self.case)
        if not result.passed:
            raise PolicyCaseFailed("\n".join(result.problems))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, PolicyCaseFailed):
            return f"{self.case.location}: {self.case.name}\n{excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"policy case: {self.case.name}"
