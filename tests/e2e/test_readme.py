"""The README's first two sections, run to the letter against a real `toshi serve`.

Every `curl` in the Quick start and "Querying the city" is run in order, as a reader pasting
them would: none may fail, and every query must find something (issue 11: the query examples
once followed the deletion of their only entity, so each of them answered `[]`).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.broker_process import Broker

pytestmark = pytest.mark.e2e
README = Path(__file__).resolve().parents[2] / "README.md"
RECORDING_CURL = r"""
n=0
curl() {
  n=$((n+1))
  args=()
  for a in "$@"; do [ "$a" = "-i" ] || args+=("$a"); done
  printf '%s\n' "$*" > "$OUT/$n.args"
  command curl -sS -o "$OUT/$n.body" -w '%{http_code}' "${args[@]}" > "$OUT/$n.status"
}
"""


def shell_blocks(first: str, until: str) -> list[str]:
    text = README.read_text()
    section = text[text.index(first) : text.index(until)]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [b for b in blocks if "pip install" not in b]  # the install-and-run line


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    running = Broker(tmp_path / "data")
    running.start()
    yield running
    running.stop()


def test_the_quick_start_and_query_examples_work_as_written(broker: Broker, tmp_path: Path) -> None:
    out = tmp_path / "calls"
    out.mkdir()
    host = broker.url.removeprefix("http://")
    script = RECORDING_CURL + "\n".join(
        block.replace("localhost:1026", host)
        for block in shell_blocks("## Quick start", "## Subscriptions and notifications")
    )
    subprocess.run(
        ["bash", "-c", script], check=True, env={"OUT": str(out), "PATH": "/usr/bin:/bin"}
    )
    calls = sorted(out.glob("*.status"), key=lambda p: int(p.stem))
    assert len(calls) >= 15
    for status_file in calls:
        n = status_file.stem
        args = (out / f"{n}.args").read_text().strip()
        status = int(status_file.read_text())
        assert status < 400, f"{args} -> {status}: {(out / f'{n}.body').read_text()}"
        if " -G " in f" {args} " or "entityOperations/query" in args:
            found = json.loads((out / f"{n}.body").read_text())
            assert found, f"the README query found nothing: curl {args}"
