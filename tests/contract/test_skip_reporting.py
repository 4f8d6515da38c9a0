"""Without a MongoDB server, the MongoDB half of the contract suite and every replica test are
reported as skipped with the reason — never as passed (issue 17's acceptance)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.contract.conftest import MONGODB_URL_VARIABLE, NO_MONGODB

ROOT = Path(__file__).resolve().parents[2]
SUITES = ["tests/contract/test_store_contract.py", "tests/replicas"]


def run_pytest(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != MONGODB_URL_VARIABLE}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.stdout


def test_the_mongodb_half_skips_with_its_reason_and_never_passes() -> None:
    collected = run_pytest("--collect-only", "-q", *SUITES)
    items = [
        line
        for line in collected.splitlines()
        if "::" in line and ("[mongodb]" in line or line.startswith("tests/replicas/"))
    ]
    sqlite = [line for line in collected.splitlines() if "[sqlite]" in line]
    assert len(items) >= 30 and len(sqlite) >= 30, collected  # one body, both backends
    output = run_pytest("-rs", "-q", *items)
    reasons = re.findall(r"^SKIPPED \[(\d+)\] [^:]+:\d+: (.*)$", output, re.MULTILINE)
    assert sum(int(n) for n, _ in reasons) == len(items), output
    assert {reason for _, reason in reasons} == {NO_MONGODB}
    assert re.search(rf"^{len(items)} skipped", output, re.MULTILINE), output
    assert " passed" not in output
