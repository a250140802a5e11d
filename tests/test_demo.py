"""`router demo` on a small config: off a terminal its output carries no escape codes and no
curl hint for a router that is gone; kept up (as on a terminal), the curl commands it prints work."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from router.billing.auth import hash_key
from router.config import load_config
from router.demo import DEMO_KEY, run_demo


def _demo_config(tmp_path: Path) -> Path:
    """One healthy provider, and one whose health probe fails at once: its warning is a log line
    the console renderer would colour."""
    path = tmp_path / "demo.yaml"
    path.write_text(
        "server: {host: 127.0.0.1, port: 0}\n"
        "providers:\n"
        "  - {name: calm, base_url: 'http://127.0.0.1:9', formats: [openai-chat], health: {interval_s: 30}}\n"
        "  - {name: sick, base_url: 'http://127.0.0.1:9', formats: [openai-chat],\n"
        "     health: {path: /nope, unhealthy_after: 1, interval_s: 30}}\n"
        "models:\n"
        "  - {name: demo-gpt, routes: [{provider: calm, model: demo-gpt},\n"
        "                              {provider: sick, model: demo-gpt, priority: 1}]}\n"
        "plans:\n  - {name: demo, models: ['demo-*']}\n"
        f"keys:\n  - {{id: demo, hash: '{hash_key(DEMO_KEY)}', plan: demo}}\n"
        f"ledger: {{path: '{tmp_path / 'usage.jsonl'}'}}\n"
    )
    return path


def test_off_a_terminal_the_demo_prints_no_escape_codes_and_exits(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    done = subprocess.run(
        [sys.executable, "-m", "router", "demo", "--config", str(_demo_config(tmp_path)), "--requests", "6"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, err
    assert "demo finished: every request was answered" in out and "without a key: 401" in out
    assert "provider_health_changed" in err, "a warning was logged, uncoloured"
    assert "\x1b" not in out and "\x1b" not in err
    assert "curl" not in out and "Ctrl-C" not in out, "no hint for a router that is gone"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl, which the hint runs")
def test_the_curl_commands_it_prints_work_while_it_stays_up(tmp_path: Path) -> None:
    answers: list[Any] = []

    def try_them(url: str, commands: list[str]) -> None:
        for command in commands:
            done = subprocess.run(shlex.split(command), capture_output=True, timeout=10)
            assert done.returncode == 0, done.stderr
            answers.append(orjson.loads(done.stdout))

    assert run_demo(load_config(str(_demo_config(tmp_path))), requests=6, hold=try_them) == 0
    models, chat = answers
    assert [m["id"] for m in models["data"]] == ["demo-gpt"]
    assert chat["object"] == "chat.completion" and chat["choices"][0]["message"]["content"]
