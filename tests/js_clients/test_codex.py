"""OpenAI's Codex CLI (npm ``@openai/codex``, whose native binary comes in the package) runs
``codex exec`` against Parley as a custom model provider (``wire_api = "responses"``), over
HTTP (SSE) and over the Responses WebSocket (the provider's ``supports_websockets``, where
Codex first sends a ``generate: false`` warm-up).

Each run has a ``CODEX_HOME`` of its own whose ``config.toml`` keeps Codex's default tool
set (its ``web_search`` tool, which Parley takes and does not offer, and its sub-agents'
``namespace`` tool, whose functions the model sees) and switches off only what would leave
this machine:

* ``features.plugins = false`` and ``analytics.enabled = false``: else it looks up
  api.github.com and chatgpt.com (plugins) and ab.chatgpt.com (analytics) at start;
* the provider's ``request_max_retries`` and ``stream_max_retries`` are 0: a failed
  request shows at once instead of being tried again.

The model calls Codex's shell tool (``exec_command``): the demo model, and fake upstreams
of two kinds (Anthropic; Gemini 3, which signs its calls: over HTTP, where Codex sends
``store: false`` and its whole history with ``include: ["reasoning.encrypted_content"]``,
the signature goes back in a reasoning item's ``encrypted_content``). A model name Codex has no metadata for
(``demo/...``, ``claude-http/...``) gets Codex's fallback metadata, without its freeform
``apply_patch`` tool and its ``tool_search`` (more tools Parley refuses); it says so in one
notice of its output, the only error item a run may show. The shell runs in this container
(``--dangerously-bypass-approvals-and-sandbox``), and ``HTTP(S)_PROXY`` point at a closed
loopback port, so that anything Codex would send beyond loopback fails here.

``make test`` installs the pinned package (``npm ci --prefix tests/js_clients``); without it
(or without node) this skips, and fails under CI.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from parley.testing.fake_anthropic import FakeAnthropic, message_events, text, tool_use
from parley.testing.fake_gemini import FakeGemini, Script, usage_metadata
from parley.testing.scripted import Answer
from tests.e2e.helpers import marker
from tests.harness import FreshDatabase, ParleyServer, free_port
from tests.unavailable import unavailable

HERE = Path(__file__).parent
CODEX = HERE / "node_modules" / "@openai" / "codex" / "bin" / "codex.js"
TRANSPORTS = ["http", "websocket"]
#: The environment variable that carries the Parley key to Codex (its ``env_key``).
KEY_VARIABLE = "PARLEY_API_KEY"
#: What Codex logs once it holds a Responses WebSocket (with ``RUST_LOG`` below).
SOCKET_LOG = "codex_api::endpoint::responses_websocket=info"
SOCKET_OPEN = "successfully connected to Responses WebSocket"
#: A run must end in this many seconds.
TIMEOUT = 60


def codex_config(base_url: str, model: str) -> str:
    """``config.toml`` of a ``CODEX_HOME``: Parley at ``base_url`` as the model provider."""
    return f"""\
model = "{model}"
model_provider = "parley"

[features]
plugins = false

[analytics]
enabled = false

[model_providers.parley]
name = "Parley"
base_url = "{base_url}/v1"
env_key = "{KEY_VARIABLE}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"""


def check_installed() -> None:
    """Skip (fail under CI) unless the package and node, which runs its launcher, are here."""
    if shutil.which("node") is None:
        unavailable("node is not on PATH; Codex's launcher needs it")
    if not CODEX.exists():
        hint = "`make test` installs it (npm ci --prefix tests/js_clients)"
        unavailable(f"@openai/codex is not installed in {HERE / 'node_modules'}; {hint}")


@dataclass
class Run:
    """One ``codex exec --json``: its events (the JSON lines of its output) and its log."""

    events: list[dict[str, Any]]
    log: str

    def items(self, kind: str) -> list[dict[str, Any]]:
        """The completed items of type ``kind``."""
        return [
            e["item"]
            for e in self.events
            if e["type"] == "item.completed" and e["item"]["type"] == kind
        ]

    @property
    def answer(self) -> str:
        """The text of the final agent message."""
        return str(self.items("agent_message")[-1]["text"])

    def check(self, transport: str) -> None:
        """The turn completed with no error on ``transport``, the one Codex used (a failed
        WebSocket would show as errors: its retries, then "Falling back ... to HTTPS")."""
        assert [e["type"] for e in self.events][-1] == "turn.completed", self
        assert not [e for e in self.events if e["type"] == "error"], self
        notices = [item["message"] for item in self.items("error")]
        assert all(n.startswith("Model metadata for ") for n in notices), notices
        assert (SOCKET_OPEN in self.log) == (transport == "websocket"), self.log


@dataclass
class Codex:
    """``codex exec`` pointed at one Parley, run in ``workdir``."""

    home: Path
    workdir: Path
    key: str

    @classmethod
    def at(cls, tmp: Path, base_url: str, key: str, model: str) -> Codex:
        check_installed()
        home, workdir = tmp / "codex-home", tmp / "work"
        home.mkdir()
        workdir.mkdir()
        (home / "config.toml").write_text(codex_config(base_url, model))
        return cls(home, workdir, key)

    def command(self, prompt: str, transport: str) -> list[str]:
        socket = "true" if transport == "websocket" else "false"
        return [
            "node",
            str(CODEX),
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            "-C",
            str(self.workdir),
            "-c",
            f"model_providers.parley.supports_websockets={socket}",
            prompt,
        ]

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OPENAI_", "CODEX_")) and not k.lower().endswith("_proxy")
        }
        closed = f"http://127.0.0.1:{free_port()}"
        # A home of its own: the commands Codex runs are login shells (bash -lc), which
        # would otherwise run the machine user's dotfiles (a pyenv rehash there, racing
        # with another run's, writes to the command's output).
        home = self.home.parent / "home"
        home.mkdir(exist_ok=True)
        return {
            **env,
            "HOME": str(home),
            "CODEX_HOME": str(self.home),
            KEY_VARIABLE: self.key,
            "RUST_LOG": SOCKET_LOG,
            "NO_COLOR": "1",
            **{name: closed for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
            "NO_PROXY": "127.0.0.1,localhost",
        }

    def run(self, prompt: str, transport: str) -> Run:
        try:
            done = subprocess.run(
                self.command(prompt, transport),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                cwd=self.workdir,
                env=self.env(),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"codex exec took over {TIMEOUT} s; it printed: {exc.stdout!r}", False)
        return self._parsed(done.returncode, done.stdout, done.stderr)

    async def run_async(self, prompt: str, transport: str) -> Run:
        """As ``run``, without blocking the loop (where a fake upstream answers)."""
        process = await asyncio.create_subprocess_exec(
            *self.command(prompt, transport),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.workdir,
            env=self.env(),
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            pytest.fail(f"codex exec took over {TIMEOUT} s", False)
        assert process.returncode is not None
        return self._parsed(process.returncode, stdout.decode(), stderr.decode())

    @staticmethod
    def _parsed(code: int, stdout: str, stderr: str) -> Run:
        assert code == 0, f"codex exec exited {code}\nstdout: {stdout[-4000:]}\nstderr: {stderr[-4000:]}"  # fmt: skip
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        return Run([json.loads(line) for line in lines], stderr)


# ----------------------------------------------------------------------- the demo model


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_plain_task_gets_a_final_answer(
    server: Any, user_key: str, tmp_path: Path, transport: str
) -> None:
    codex = Codex.at(tmp_path, server.base_url, user_key, "demo/parley")
    run = codex.run("Say hello to Parley.", transport)
    run.check(transport)
    assert run.answer.startswith('Demo model: you said "Say hello to Parley."'), run.answer
    assert not run.items("command_execution")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_demo_model_runs_a_shell_command_through_codex(
    server: Any, user_key: str, tmp_path: Path, transport: str
) -> None:
    """The demo calls Codex's shell tool (``exec_command``) when the message names it, and
    fills each of its string arguments with the text after the name: the command ``ls``
    runs with ``ls`` as its working folder (``ls`` as its shell too, which Codex does not
    take for one and replaces by its default)."""
    codex = Codex.at(tmp_path, server.base_url, user_key, "demo/parley")
    proof = f"proof-{marker()}"
    (codex.workdir / "ls").mkdir()
    (codex.workdir / "ls" / proof).touch()
    run = codex.run("exec_command ls", transport)
    run.check(transport)
    (command,) = run.items("command_execution")
    assert (command["exit_code"], command["aggregated_output"]) == (0, f"{proof}\n"), command
    assert run.answer.startswith('Demo model: the tool exec_command returned "'), run.answer
    assert f"Output:\n{proof}\n" in run.answer, run.answer


# ------------------------------------------------------------------ fake upstreams

#: Gemini's opaque signature of its first function call (base64).
SIGNATURE = "c2lnbmVkIGJ5IGdlbWluaQ=="


class Queued(dict[str, Script]):
    """``FakeGemini.scripts`` whose one model answers its calls with ``scripts`` in turn
    (the last one repeated)."""

    def __init__(self, model: str, *scripts: Script) -> None:
        super().__init__({model: scripts[-1]})
        self.queue = list(scripts[:-1])

    def get(self, model: str, default: Any = None) -> Any:  # type: ignore[override]
        if model in self and self.queue:
            return self.queue.pop(0)
        return super().get(model, default)


@dataclass
class Upstreams:
    """A Parley whose providers ``claude-<transport>`` and ``gemini-<transport>`` are fake
    APIs of their own (each test has its own)."""

    server: ParleyServer
    claude: dict[str, FakeAnthropic]
    gemini: dict[str, FakeGemini]
    key: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstreams(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Upstreams]:
    check_installed()
    tmp = tmp_path_factory.mktemp("codex-upstreams")
    claude = {t: await FakeAnthropic(api_key="sk-test").start() for t in TRANSPORTS}
    gemini = {t: await FakeGemini().__aenter__() for t in TRANSPORTS}
    tables = [(f"claude-{t}", "anthropic", fake.base_url) for t, fake in claude.items()]
    tables += [(f"gemini-{t}", "gemini", fake.base_url) for t, fake in gemini.items()]
    config = "".join(
        f'[providers.{name}]\nkind = "{kind}"\nbase_url = "{url}"\n'
        'api_key = "sk-test"\nmax_retries = 0\n\n'
        for name, kind, url in tables
    )
    db = FreshDatabase(tmp)
    server = ParleyServer(database_url=db.url, workdir=tmp, config=config)
    try:
        server.start()
        yield Upstreams(server, claude, gemini, server.new_user())
    finally:
        server.stop()
        server.assert_clean_log()
        db.drop()
        for fake in claude.values():
            await fake.aclose()
        for gem in gemini.values():
            await gem.__aexit__(None, None, None)


def check_command(run: Run, word: str) -> None:
    """Codex ran the command the model asked for, ``echo WORD $((6 * 7))``."""
    (command,) = run.items("command_execution")
    assert (command["exit_code"], command["aggregated_output"]) == (0, f"{word} 42\n"), command


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_shell_round_trip_through_parley_to_anthropic(
    upstreams: Upstreams, tmp_path: Path, transport: str
) -> None:
    """The upstream model calls ``exec_command``; Codex runs it and sends its output back;
    the model answers. Two upstream calls: the WebSocket's warm-up makes none."""
    word = marker()
    fake = upstreams.claude[transport]
    arguments = json.dumps({"cmd": f"echo {word} $((6 * 7))"})
    call = tool_use("toolu_01Codex", "exec_command", arguments[:9], arguments[9:])
    fake.answer(
        Answer(message_events([call], stop_reason="tool_use", model="claude-test-1")),
        Answer(message_events([text("Codex ran ", word)], model="claude-test-1")),
    )
    model = f"claude-{transport}/claude-test-1"
    codex = Codex.at(tmp_path, upstreams.server.base_url, upstreams.key, model)
    run = await codex.run_async("Run the command.", transport)
    run.check(transport)
    check_command(run, word)
    assert run.answer == f"Codex ran {word}"

    calls = [r.body for r in fake.requests if r.method == "POST"]
    assert len(calls) == 2, calls
    assert "exec_command" in [tool["name"] for tool in calls[0]["tools"]]
    assert calls[1]["messages"][-2]["content"][-1]["type"] == "tool_use"
    (result,) = calls[1]["messages"][-1]["content"]
    assert (result["type"], result["tool_use_id"]) == ("tool_result", "toolu_01Codex"), result
    assert f"Output:\n{word} 42\n" in result["content"], result


def gemini_turn(parts: list[dict[str, Any]], **last: Any) -> list[dict[str, Any]]:
    """A streamed Gemini answer: one event of ``parts``, then the end with its usage."""
    model = {"role": "model", "parts": parts}
    end = {"role": "model", "parts": [{"text": ""}]}
    return [
        {"candidates": [{"content": model, "index": 0}]},
        {
            "candidates": [{"content": end, "index": 0, "finishReason": "STOP"}],
            "usageMetadata": usage_metadata(12, 5, **last),
        },
    ]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    "transport",
    ["http", "websocket"],
)
async def test_a_shell_round_trip_through_parley_to_gemini_3(
    upstreams: Upstreams, tmp_path: Path, transport: str
) -> None:
    """As with Anthropic, on a model that signs its function calls: Gemini 3 refuses a
    call's step sent back without its thought signature (the fake checks it)."""
    word = marker()
    fake = upstreams.gemini[transport]
    fake.require_signatures = True
    call = {"name": "exec_command", "args": {"cmd": f"echo {word} $((6 * 7))"}, "id": "c1"}
    thought = {"text": "Run it.", "thought": True}
    signed = {"functionCall": call, "thoughtSignature": SIGNATURE}
    first = Script(gemini_turn([thought, signed], thoughts=2))
    fake.scripts = Queued(
        "gemini-3-flash", first, Script(gemini_turn([{"text": f"Codex ran {word}"}]))
    )
    model = f"gemini-{transport}/gemini-3-flash"
    codex = Codex.at(tmp_path, upstreams.server.base_url, upstreams.key, model)
    run = await codex.run_async("Run the command.", transport)
    run.check(transport)
    check_command(run, word)
    assert run.answer == f"Codex ran {word}"

    calls = [r.body for r in fake.requests if r.method == "POST"]
    assert len(calls) == 2, calls
    step, results = calls[1]["contents"][-2:]
    assert [p["thoughtSignature"] for p in step["parts"] if "functionCall" in p] == [SIGNATURE]
    (result,) = results["parts"]
    assert f"Output:\n{word} 42\n" in result["functionResponse"]["response"]["content"], result


# ------------------------------------------------------- a model Codex has metadata for


@pytest.fixture(scope="module")
def named_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Parley whose models without a provider are the demo's: Codex's own model names
    (``gpt-5.5``, which Codex has metadata for) reach the demo model."""
    check_installed()
    tmp = tmp_path_factory.mktemp("codex-named")
    db = FreshDatabase(tmp)
    server = ParleyServer(database_url=db.url, workdir=tmp, env={"PARLEY_DEFAULT_PROVIDER": "demo"})
    try:
        yield server.start()
    finally:
        server.stop()
        db.drop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_codex_s_full_tool_set_and_its_freeform_apply_patch(
    named_server: ParleyServer, tmp_path: Path, transport: str
) -> None:
    """With a model it knows, Codex offers its whole default tool set: the freeform
    ``apply_patch`` (a custom tool with a grammar), ``tool_search`` run by the client,
    ``web_search`` and its functions. The demo calls ``apply_patch`` with the patch that
    follows its name; Codex applies it (the file is made) and the answer quotes its output."""
    codex = Codex.at(tmp_path, named_server.base_url, named_server.new_user(), "gpt-5.5")
    patch = "*** Begin Patch\n*** Add File: hello.txt\n+hello from a patch\n*** End Patch"
    run = codex.run(f"apply_patch {patch}", transport)
    assert [e["type"] for e in run.events][-1] == "turn.completed", run
    assert not [e for e in run.events if e["type"] == "error"], run
    assert (codex.workdir / "hello.txt").read_text() == "hello from a patch\n"
    (change,) = run.items("file_change")
    assert change["status"] == "completed", change
    assert run.answer.startswith('Demo model: the tool apply_patch returned "'), run.answer
