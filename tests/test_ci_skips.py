"""conftest's CI policy: with CI=true a skip fails the run, except a real-Kind test skipped
for want of a Docker engine; without CI a skip stays a skip."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CASES = '''
import pytest

def test_skipped_inside():
    pytest.skip("chromium is absent")

@pytest.mark.skipif(True, reason="kustomize missing")
def test_skipped_by_mark():
    pass

@pytest.mark.kind
@pytest.mark.skipif(True, reason="`docker info` failed, no Docker engine is reachable")
def test_kind_without_docker():
    pass

@pytest.mark.kind
@pytest.mark.skipif(True, reason="kind is not on PATH")
def test_kind_for_another_reason():
    pass

def test_passes():
    pass
'''
MISSING_EXTRA = '''
import pytest
pytest.importorskip("no_such_extra_module", reason="the extra is not installed")

def test_never_collected():
    pass
'''


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    kind: needs docker and kind\n")
    pytester.makepyfile(test_cases=CASES, test_missing_extra=MISSING_EXTRA)
    return pytester


@pytest.mark.slow  # pytest in a subprocess
def test_in_ci_every_skip_but_kind_without_docker_fails(suite, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest_subprocess("-rs", "--continue-on-collection-errors")
    # a skip in setup (skipif) shows as an error, one inside the test as a failure
    result.assert_outcomes(passed=1, failed=1, errors=3, skipped=1)
    for line in ("*unexpected skip in CI (CI=true): chromium is absent*",
                 "*unexpected skip in CI (CI=true): kustomize missing*",
                 "*unexpected skip in CI (CI=true): kind is not on PATH*",
                 "*unexpected skip in CI (CI=true): the extra is not installed*",
                 "SKIPPED*no Docker engine is reachable*"):
        result.stdout.fnmatch_lines([line])  # each anywhere in the output
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.slow  # pytest in a subprocess
def test_outside_ci_a_skip_is_a_skip(suite, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1, skipped=5)
    assert result.ret == pytest.ExitCode.OK
