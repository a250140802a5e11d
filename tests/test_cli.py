"""The command line: `keys new`, `usage`, the --workers guard, and `serve` stopped with SIGTERM
(a real subprocess on a real socket: the ledger keeps every finished request)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from router.billing.auth import hash_key
from router.cli import main
from router.config import load_config, parse_config
from router.ops.admin_auth import BearerGuard
from tests.redis_server import free_port

KEY = "toc-cli-" + "c" * 40


def test_keys_new_prints_a_key_and_the_entry_holding_its_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "--plan", "pro", "--id", "acme-prod"]) == 0
    out = capsys.readouterr().out
    [key] = re.findall(r"toc-[A-Za-z0-9_-]{32,}", out)
    entry = re.search(r"- \{id: acme-prod, hash: \"(sha256:[0-9a-f]{64})\", plan: pro\}", out)
    assert entry is not None and entry.group(1) == hash_key(key)
    assert main(["keys", "new", "--plan", "pro"]) == 0
    assert key not in capsys.readouterr().out, "every key is fresh"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--plan", "pro", "--id", "acme prod"], "--id: must match [A-Za-z0-9._-]+, got 'acme prod'"),
        (["--plan", "pro/x"], "--plan: must match [A-Za-z0-9._-]+, got 'pro/x'"),
        (["--plan", "gold", "--config", "{config}"], "--plan: no plan 'gold' in {config} (plans: pro)"),
        (["--plan", "pro", "--id", "acme", "--config", "{config}"], "--id: {config} already has a key with id 'acme'"),
    ],
)
def test_keys_new_refuses_what_the_config_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], error: str
) -> None:
    """An id or plan the config validator would refuse, a plan the config lacks, an id it already
    has: exit 2 with one line naming the flag, and no key printed."""
    config = str(_config_file(tmp_path, tmp_path / "usage.jsonl"))
    assert main(["keys", "new", *(a.format(config=config) for a in args)]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == error.format(config=config) and out == ""


def test_keys_new_checked_against_a_config_gives_an_entry_it_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config_file(tmp_path, tmp_path / "usage.jsonl")
    assert main(["keys", "new", "--plan", "pro", "--config", str(path)]) == 0
    entry = re.search(r"  (- \{id: pro-[0-9a-f]{6}, .*\})", capsys.readouterr().out)
    assert entry is not None
    path.write_text(path.read_text() + f"  {entry.group(1)}\n")
    assert [k.plan for k in load_config(str(path)).keys] == ["pro", "pro"]


@pytest.mark.parametrize(("purpose", "field"), [("metrics", "metrics_token"), ("admin", "admin_token")])
def test_token_new_prints_a_token_and_the_line_holding_its_hash(
    capsys: pytest.CaptureFixture[str], purpose: str, field: str
) -> None:
    """The line goes under `server:` as is; the token then opens what it guards, and nothing else."""
    assert main(["token", "new", "--for", purpose]) == 0
    out = capsys.readouterr().out
    [token] = re.findall(r"toc-op-[A-Za-z0-9_-]{43}", out)
    line = re.search(rf'  {field}: "(sha256:[0-9a-f]{{64}})"', out)
    assert line is not None and line.group(1) == hash_key(token)
    config = parse_config(
        {
            "server": {field: line.group(1)},
            "providers": [{"name": "a", "base_url": "http://a.invalid", "formats": ["openai-chat"]}],
            "models": [{"name": "m", "routes": [{"provider": "a", "model": "m"}]}],
            "plans": [{"name": "pro", "models": ["*"]}],
            "keys": [{"id": "k", "hash": hash_key(KEY), "plan": "pro"}],
        }
    )
    guard = BearerGuard(getattr(config.server, field))
    assert guard.allows(f"Bearer {token}") and not guard.allows(f"Bearer {KEY}") and not guard.allows(token)
    assert main(["token", "new", "--for", purpose]) == 0
    assert token not in capsys.readouterr().out, "every token is fresh"


def _config_file(tmp_path: Path, ledger: Path, state: str = "{backend: memory}", port: int = 0) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(
        f"server: {{host: 127.0.0.1, port: {port}, drain_grace_s: 0.2}}\n"
        f"state: {state}\n"
        f"ledger: {{path: '{ledger}'}}\n"
        "providers:\n  - {name: a, base_url: 'http://127.0.0.1:9', formats: [openai-chat], health: {enabled: false}}\n"
        "models:\n  - {name: m, routes: [{provider: a, model: m}], price: {input_per_mtok: 1, output_per_mtok: 2}}\n"
        "plans:\n  - {name: pro, models: ['*']}\n"
        f"keys:\n  - {{id: acme, hash: '{hash_key(KEY)}', plan: pro}}\n"
    )
    return path


def test_usage_sums_the_ledger_per_key_and_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "usage.jsonl"
    now = time.time()
    records = [
        {
            "ts": now - 7200,
            "key": "acme",
            "model": "m",
            "input_tokens": 100,
            "output_tokens": 10,
            "cost_usd": 1.5,
            "status": 200,
        },
        {
            "ts": now - 60,
            "key": "acme",
            "model": "m",
            "input_tokens": 50,
            "output_tokens": 5,
            "cost_usd": 0.25,
            "status": 200,
        },
        {
            "ts": now - 30,
            "key": "other",
            "model": "m",
            "input_tokens": 1,
            "output_tokens": 1,
            "cost_usd": 0.125,
            "status": 200,
        },
    ]
    ledger.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records) + b'{"torn')
    config = _config_file(tmp_path, ledger)
    assert main(["usage", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"acme\s+m\s+2\s+150\s+0\s+15\s+1\.750000", out), out
    assert re.search(r"total\s+3\s+1\.875000", out), out
    assert main(["usage", "--config", str(config), "--key", "acme", "--since", "1h"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"acme\s+m\s+1\s+50\s+0\s+5\s+0\.250000", out) and "other" not in out
    assert main(["usage", "--ledger", str(ledger), "--key", "other"]) == 0  # the file alone, no config
    out = capsys.readouterr().out
    assert re.search(r"other\s+m\s+1\s+1\s+0\s+1\s+0\.125000", out) and "acme" not in out


def test_usage_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config_file(tmp_path, tmp_path / "none.jsonl")
    assert main(["usage", "--config", str(config)]) == 1
    assert "no ledger at" in capsys.readouterr().err
    (tmp_path / "none.jsonl").write_bytes(b"")
    assert main(["usage", "--config", str(config), "--since", "yesterday"]) == 2
    assert "--since 'yesterday'" in capsys.readouterr().err


def test_several_workers_on_memory_state_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config_file(tmp_path, tmp_path / "usage.jsonl")
    assert main(["serve", "--config", str(config), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "--workers 2 needs shared state" in err and "backend: redis" in err


def test_a_config_without_keys_must_allow_anonymous() -> None:
    """No keys and no allow_anonymous is a config error, not an open router by accident."""
    from router.config import ConfigError

    with pytest.raises(ConfigError, match="allow_anonymous"):
        parse_config(
            {
                "providers": [{"name": "a", "base_url": "http://a.invalid"}],
                "models": [{"name": "m", "routes": [{"provider": "a", "model": "m"}]}],
            }
        )


def test_sigterm_loses_no_ledger_record(tmp_path: Path, fakes) -> None:
    """`router serve` in a subprocess; a stream in flight when SIGTERM arrives still completes,
    and every finished request has its ledger line when the process has exited 0."""
    fake = fakes["alpha"]
    fakes.set("alpha", chunks=6, chunk_delay_ms=100)
    ledger = tmp_path / "usage.jsonl"
    port = free_port()
    config = _config_file(tmp_path, ledger, port=port)
    config.write_text(
        config.read_text()
        .replace("http://127.0.0.1:9", fake.url)
        .replace("[openai-chat]", "[openai-chat, anthropic-messages, openai-responses]")
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--config", str(config)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "router did not start"
            time.sleep(0.05)
        headers = {"authorization": f"Bearer {KEY}"}
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=base, timeout=10, headers=headers) as client:
            for _ in range(3):
                assert client.post("/v1/chat/completions", json=body).status_code == 200
            with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as stream:
                lines = stream.iter_lines()
                first = next(lines)
                assert first.startswith("data: ")
                proc.send_signal(signal.SIGTERM)
                rest = list(lines)
        assert "data: [DONE]" in rest, "the stream in flight finished whole"
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
    records = [orjson.loads(line) for line in ledger.read_bytes().splitlines()]
    assert len(records) == 4 and all(r["key"] == "acme" and r["status"] == 200 for r in records)
    assert records[-1]["output_tokens"] > 0 and records[-1]["cost_usd"] > 0


def _check_config(tmp_path: Path, providers: str) -> Path:
    path = tmp_path / "check.yaml"
    path.write_text(
        "server: {allow_anonymous: true}\n"
        f"providers:\n{providers}"
        "models:\n  - {name: m, routes: [{provider: a, model: m}]}\n"
    )
    return path


def test_check_warns_of_a_base_url_ending_in_v1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The router appends /v1/...: the warning shows the URL a chat request will really go to."""
    config = _check_config(
        tmp_path,
        "  - {name: a, base_url: 'https://x.example/v1/', formats: [openai-chat], api_key: k}\n"
        "  - {name: b, base_url: 'https://y.example/api', formats: [anthropic-messages], api_key: k}\n",
    )
    assert main(["check", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "OK, 2 provider(s)" in out
    assert err.splitlines() == [
        "warning: providers[0].base_url ends in /v1: requests will go to https://x.example/v1/v1/chat/completions"
    ]
    assert main(["check", "--config", str(config)]) == 0, "--config still works"
    assert main(["check"]) == 2 and "which config" in capsys.readouterr().err


def test_check_keeps_its_table_aligned_for_long_upstream_model_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "check.yaml"
    path.write_text(
        "server: {allow_anonymous: true}\n"
        "providers:\n"
        "  - {name: a-provider-with-a-long-name, base_url: 'https://x.example', formats: [openai-chat], api_key: k}\n"
        "  - {name: b, base_url: 'https://y.example', formats: [openai-chat], api_key: k}\n"
        "models:\n  - {name: m, routes: [{provider: a-provider-with-a-long-name, model: m},"
        " {provider: b, model: accounts/fireworks/models/llama-v3p1-405b-instruct}]}\n"
    )
    assert main(["check", str(path)]) == 0
    routes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  priority")]
    assert len(routes) == 2 and len({line.index(" weight ") for line in routes}) == 1, routes


def test_check_probe_prints_a_table_and_fails_on_an_unreachable_provider(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fakes
) -> None:
    """Against the live fake and a port nobody listens on: one row each, exit 1; the fake alone: exit 0."""
    dead = free_port()
    live = f"  - {{name: a, base_url: '{fakes['alpha'].url}', formats: [openai-chat], api_key: k}}\n"
    off = "  - {name: c, base_url: 'http://127.0.0.1:9', formats: [openai-chat], health: {enabled: false}}\n"
    refused = (
        f"  - {{name: b, base_url: 'http://127.0.0.1:{dead}', formats: [openai-chat], health: {{timeout_s: 1}}}}\n"
    )
    assert main(["check", "--probe", str(_check_config(tmp_path, live + refused + off))]) == 1
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line[:2] in ("a ", "b ", "c ")}
    assert re.fullmatch(rf"a\s+{re.escape(fakes['alpha'].url)}/v1/models\s+yes\s+200\s+[\d.]+\s+status 200", rows["a"])
    assert re.fullmatch(rf"b\s+http://127.0.0.1:{dead}/v1/models\s+no\s+-\s+[\d.]+\s+connection refused", rows["b"])
    assert "skipped: health.enabled is false" in rows["c"]
    assert main(["check", "--probe", str(_check_config(tmp_path, live))]) == 0
    fakes.set("alpha", health_status=503)
    assert main(["check", "--probe", str(_check_config(tmp_path, live))]) == 1
    assert re.search(r"\bno\s+503\b.*status 503", capsys.readouterr().out)
