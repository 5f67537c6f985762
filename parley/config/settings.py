"""``Settings``: the server's settings, from ``PARLEY_*`` variables or arguments, the config
file's tables, and the defaults; and the providers they give (built-in and configured)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from parley.config.embeddings import default_embedding_model
from parley.config.errors import ConfigError, positive
from parley.config.file import ConfigFile, table_models
from parley.config.mcp_servers import MCPServerConfig, check_label
from parley.config.paths import data_dir, default_database_url
from parley.config.providers import BUILTIN_PROVIDERS, BuiltinProvider, ProviderConfig
from parley.config.tuning import Tuning


def _model_name(value: Any) -> Any:
    """``embedding_model``: empty (or only spaces) is none; a name is ``provider/model`` or
    ``model``."""
    if isinstance(value, str):
        value = value.strip() or None
        if value is not None and (value.startswith("/") or value.endswith("/")):
            raise ConfigError(
                f"PARLEY_EMBEDDING_MODEL: {value!r} is not a model name: use "
                "provider/model, as openai/text-embedding-3-small"
            )
    return value


def _search_url(value: Any) -> Any:
    """``web_search_url``: empty is none; a URL is ``http://`` or ``https://``."""
    if isinstance(value, str):
        value = value.strip() or None
        if value is not None and not value.startswith(("http://", "https://")):
            raise ConfigError(
                f"PARLEY_WEB_SEARCH_URL must be an http:// or https:// URL, not {value!r}"
            )
    return value


class Settings(BaseSettings):
    """The server's settings: ``PARLEY_*`` variables or arguments, over the config file's
    tables (``parley.config.file``), over the defaults below."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore")

    _file: ConfigFile | None = PrivateAttr(default=None)

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
    #: Seconds a replica's claim on a running turn lasts without a heartbeat (renewed every
    #: second): a run whose server died is closed ``incomplete`` within this plus
    #: ``tuning.sweep_seconds``. Shorter closes dead runs sooner; a replica whose database
    #: writes stall for longer than this loses its running turns to the sweep.
    lease_seconds: float = Field(default=4.0, gt=0)
    #: Hours a finished run's event log is kept (its messages and the run itself are kept
    #: for good): older logs are pruned, so a stream replayed then gets only the run's end
    #: (docs/runs.md). 0: keep every log.
    event_retention_hours: float = Field(default=168.0, ge=0.0)
    #: A name for this server that survives its restarts (default: its host name and
    #: port). A server started again under the same name closes the runs its earlier life
    #: left running as soon as it sees their lease is not renewed, without waiting for it
    #: to run out. Replicas must not share a name.
    node_id: str | None = None
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
    embedding_model: Annotated[str | None, BeforeValidator(_model_name)] = Field(
        default_factory=default_embedding_model, max_length=200
    )
    #: Seconds a run's turn waits, before its first model call, for the files of its
    #: thread's vector stores to be indexed (``engine.hosted.file_search.wait_for_files``):
    #: a file attached just before the run is searched, as on OpenAI. Past it the turn goes
    #: on, and its searches name the files not indexed yet. 0: no wait.
    file_search_wait_seconds: float = Field(default=60.0, ge=0, le=3600)

    #: The search service the ``web_search`` tool runs through: the base URL of a SearXNG
    #: instance whose JSON API is on (``parley.retrieval.websearch``). Unset: ``web_search``
    #: is taken and not offered to the model. Also ``url`` in the config file's
    #: ``[web_search]`` table.
    web_search_url: Annotated[str | None, BeforeValidator(_search_url)] = Field(
        default=None, max_length=2000
    )
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
    #: ``s3_bucket``, ...).
    files_storage: Literal["auto", "local", "database", "s3"] = "auto"
    #: The directory of local file storage (default: ``files`` in the data directory).
    files_dir: Path | None = None
    #: The largest file, in bytes (an upload's declared size too); larger ones get 413.
    files_max_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    #: Bytes of files one user may keep in all (0: no quota); over it an upload gets 400.
    files_user_quota_bytes: int = Field(default=10 * 1024**3, ge=0)
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
    #: Processes (threads included) one container may run at once, and the largest file
    #: it may write, in bytes.
    code_interpreter_max_processes: int = Field(default=64, ge=8)
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
    #: Where endpoints may point besides public addresses, as ``PARLEY_MCP_ALLOW_URLS``
    #: says it (``parley.mcp.addresses``): entries separated by commas.
    webhook_allow_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)

    #: The server's internal intervals (``parley.config.tuning``): constants, which only
    #: the test suite and the benchmarks change (``PARLEY_TUNING``, a JSON object).
    tuning: Tuning = Field(default_factory=Tuning)

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
        return positive(str(info.field_name), value, float)

    @field_validator("mcp_max_output", "mcp_max_tools", mode="before")
    @classmethod
    def _count(cls, value: Any, info: ValidationInfo) -> Any:
        return positive(str(info.field_name), value, int)

    @model_validator(mode="after")
    def _config_file(self) -> Settings:
        """The config file, read once (``parley.config.file``): its tables set the settings
        no variable or argument gave, and register MCP servers (a given one wins over the
        file's of its label); its providers are kept for ``provider_configs``."""
        for label in self.mcp_servers:
            check_label(label, where="mcp_servers")
        if self.config is None:
            return self
        file = ConfigFile.read(self.config)
        self.mcp_servers = {**file.mcp_servers(), **self.mcp_servers}
        for name, value in file.settings(_TABLE_MODELS, self.model_fields_set).items():
            setattr(self, name, value)
        self._file = file
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
        """The ``[providers.NAME]`` tables of the config file. Raises ``ConfigError`` naming
        the table and field at fault."""
        if self._file is None:
            return {}
        tables = self._file.provider_tables()
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
                    f"{self._file.path}: [providers.{name}] {where}: {first['msg']}"
                ) from None
        return out

    def provider_api_key(self, config: ProviderConfig) -> str | None:
        """The key for a provider: inline, or read from the variable it names."""
        if config.api_key_env:
            return os.environ.get(config.api_key_env)
        return config.api_key


#: The models of the config file's settings tables, made from the fields above.
_TABLE_MODELS = table_models(Settings.model_fields)
