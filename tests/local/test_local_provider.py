"""The local provider where its model server cannot run: what ``/v1/models``, a turn and
``parley local check`` say, through a real ``parley serve``. (The real server's tier is
``test_real_model.py``.)"""

from __future__ import annotations

import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.config import ProviderConfig
from parley.providers import llama_server
from parley.providers.local import server_spec
from tests.harness import ParleyServer

#: A "llama-server" that fails as a real one does when its model cannot load.
BROKEN = """#!/bin/sh
echo "main: loading model"
echo "llama_model_load: error loading model: tensor data is not within the file bounds" >&2
exit 1
"""


@pytest.fixture(scope="module")
def broken_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bin") / "llama-server"
    path.write_text(BROKEN)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "Tiny-Model-Q4_0.gguf"
    path.write_bytes(b"GGUF" + bytes(64))
    return path


@pytest.fixture(scope="module")
def server(
    fresh_database: Any, tmp_path_factory: pytest.TempPathFactory, broken_binary: Path, gguf: Path
) -> Iterator[ParleyServer]:
    config = f"""
[providers.local]
kind = "local"
model = "{gguf}"
server_path = "{broken_binary}"
context_size = 4096
parallel = 4

[providers.nolocal]
kind = "local"
server_path = "/nonexistent/llama-server"
"""
    srv = ParleyServer(
        database_url=fresh_database.url,
        workdir=tmp_path_factory.mktemp("local-broken"),
        config=config,
        env={"PARLEY_LLAMA_SERVER": ""},
    ).start()
    yield srv
    srv.stop()
    srv.assert_clean_log()


def test_the_models_are_listed_with_a_slot_s_window(server: ParleyServer) -> None:
    key = server.new_user()
    with server.client(key) as http:
        listed = http.get("/models").json()
    models = {m["id"]: m for m in listed["data"]}
    assert models["local/tiny-model-q4_0"]["context_window"] == 1024  # 4096 in 4 slots
    assert "local/all-minilm-l6-v2" in models


def test_a_model_server_that_cannot_start_fails_the_turn_with_its_words(
    server: ParleyServer,
) -> None:
    key = server.new_user()
    with server.client(key) as http:
        answer = http.post(
            "/chat/completions",
            json={
                "model": "local/tiny-model-q4_0",
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["code"] == "upstream_unreachable"
    assert "exited (exit code 1) while starting" in error["message"]
    assert "error loading model" in error["message"]


def test_another_model_id_and_the_embedding_model_are_refused(server: ParleyServer) -> None:
    key = server.new_user()
    with server.client(key) as http:
        embedder = http.post(
            "/chat/completions",
            json={
                "model": "local/all-minilm-l6-v2",
                "messages": [{"role": "user", "content": "x"}],
            },
        )
        other = http.post(
            "/chat/completions",
            json={"model": "local/llama-70b", "messages": [{"role": "user", "content": "x"}]},
        )
        chat_embeds = http.post(
            "/embeddings", json={"model": "local/tiny-model-q4_0", "input": "x"}
        )
    assert embedder.status_code == 400 and embedder.json()["error"]["code"] == "model_not_chat"
    assert other.status_code == 502 and "local/tiny-model-q4_0" in other.json()["error"]["message"]
    assert chat_embeds.status_code == 400
    assert "--embeddings" in chat_embeds.json()["error"]["message"]


def test_without_a_server_binary_it_says_how_to_get_one(server: ParleyServer) -> None:
    key = server.new_user()
    with server.client(key) as http:
        answer = http.post(
            "/chat/completions",
            json={
                "model": "nolocal/smollm2-135m-instruct",
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert answer.status_code == 502
    assert "parley local setup" in answer.json()["error"]["message"]
    check = server.cli("local", "check")
    assert check.returncode == 1
    assert "nolocal: chat model cannot run: no llama-server at /nonexistent" in check.stdout


def test_model_names_and_the_slot_window() -> None:
    assert llama_server.model_name(None) == "smollm2-135m-instruct"
    assert llama_server.model_name("/m/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf") == (
        "qwen2.5-0.5b-instruct-q4_k_m"
    )
    spec = server_spec(ProviderConfig(kind="local", server_path=sys.executable, model="/x.gguf"))
    assert not isinstance(spec, str)
    assert spec.slot_context == 4096  # 8192 in the default 2 slots
    command = spec.command(12345)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert "--no-repack" in command
    assert not any("api" in part for part in command)  # the key is not on its command line
