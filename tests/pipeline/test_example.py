"""examples/pipeline.py: it starts, serves the API and the workers, and drains on Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline.py"


def test_the_example_serves_and_sends_until_interrupted():
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.search(r"API on (http://127\.0\.0\.1:\d+)", first)
        assert found, first
        with httpx.Client(base_url=found.group(1)) as client:
            email = client.post("/v1/emails", json={"subject": "Hi", "body": "x"}).json()
            readers = client.post(
                "/v1/lists", json={"name": "r", "addresses": ["a@example.com", "b@example.org"]}
            ).json()
            sent = client.post(f"/v1/emails/{email['id']}/send", json={"list_id": readers["id"]})
            assert sent.status_code == 202 and sent.json()["jobs"] == 1
            assert client.get("/livez").status_code == 200
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, rest
    assert "primary stored 2 messages" in rest
