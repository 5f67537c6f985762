"""GET /v1/models and parley models: every provider, ready or what it needs, and models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.harness import free_port


def test_models_lists_providers_and_their_models(server: Any, user_key: str) -> None:
    with server.client(user_key) as http:
        answer = http.get("/models")
    assert answer.status_code == 200
    body = answer.json()
    providers = {p["name"]: p for p in body["providers"]}
    assert providers["fake"] == {
        "name": "fake",
        "kind": "openai-chat",
        "ready": True,
        "problem": None,
        "models_listed": True,
    }
    ids = {m["id"] for m in body["data"]}
    assert "demo/parley" in ids
    assert any(i.startswith("fake/") for i in ids)
    # A provider that cannot be reached is not ready, and says so; one without its key
    # says what to set.
    assert providers["dead"]["ready"] is False and not providers["dead"]["models_listed"]
    assert "Could not connect" in providers["dead"]["problem"]
    assert providers["openai"]["ready"] is False
    assert providers["openai"]["problem"] == "set OPENAI_API_KEY"


def test_models_needs_a_key(server: Any) -> None:
    with server.client("pk_wrong") as http:
        assert http.get("/models").status_code == 401


def test_the_models_command(server: Any) -> None:
    env = {k: v for k, v in server.env.items() if not k.endswith("_API_KEY")}
    out = subprocess.run(
        [sys.executable, "-m", "parley.cli.main", "models"],
        env={**env, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.split()[:3] == ["fake", "openai-chat", "ready"] for line in lines)
    dead = next(line for line in lines if line.split()[:2] == ["dead", "openai-chat"])
    assert dead.split()[2:4] == ["not", "ready"] and "Could not connect" in dead, dead
    assert any("deepseek" in line and "set DEEPSEEK_API_KEY" in line for line in lines)
    assert any(line.strip().startswith("fake/") for line in lines)


def test_models_have_openais_fields(server: Any, user_key: str) -> None:
    with server.client(user_key) as http:
        body = http.get("/models").json()
    demo = next(m for m in body["data"] if m["id"] == "demo/parley")
    assert demo == {
        "id": "demo/parley",
        "object": "model",
        "created": 0,
        "owned_by": "demo",
        "provider": "demo",
    }


def test_retrieve_a_model(server: Any, user_key: str) -> None:
    with server.client(user_key) as http:
        listed = next(m for m in http.get("/models").json()["data"] if m["id"].startswith("fake/"))
        # The demo model answers to any name: each is a model.
        for model in ("demo/parley", "demo/gpt-4o", listed["id"]):
            answer = http.get(f"/models/{model}")
            assert answer.status_code == 200, answer.text
            assert answer.json()["id"] == model and answer.json()["object"] == "model"
        # A provider that cannot list its models: the id is taken as given.
        assert http.get("/models/dead/any-model").status_code == 200
        missing = [
            "fake/not-a-listed-model",  # listed, and not among them
            "nowhere/x",  # no such provider
            "openai/gpt-5",  # its provider has no key
            "parley",  # no provider part
        ]
        for model in missing:
            answer = http.get(f"/models/{model}")
            assert answer.status_code == 404, (model, answer.text)
            error = answer.json()["error"]
            assert (error["code"], error["param"]) == ("model_not_found", "model"), error
            assert model in error["message"]
        # What to do is said: the provider without its key names the variable to set.
        assert "OPENAI_API_KEY" in http.get("/models/openai/gpt-5").json()["error"]["message"]
        assert (
            http.get("/models/demo/parley", headers={"Authorization": "Bearer x"}).status_code
            == 401
        )


def test_an_unreachable_ollama_is_not_ready(tmp_path: Path) -> None:
    """``parley models`` calls a provider ready only when it answers: an Ollama server on
    a closed loopback port is "not ready", with why; one that answers (the fake upstream's
    Ollama face is not needed: the demo answers in-process) is "ready"."""
    config = tmp_path / "parley.toml"
    config.write_text(
        f'[providers.local]\nkind = "ollama"\nbase_url = "http://127.0.0.1:{free_port()}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.pop("OLLAMA_HOST", None)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "parley.cli.main",
            "models",
            "--config",
            str(config),
            "--database-url",
            f"sqlite:///{tmp_path}/x.db",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    local = next(line for line in lines if line.split()[:2] == ["local", "ollama"])
    assert local.split()[2:4] == ["not", "ready"], local
    assert "Could not connect to the Ollama server" in local, local
    demo = next(line for line in lines if line.split()[:2] == ["demo", "demo"])
    assert demo.split()[2] == "ready", demo
