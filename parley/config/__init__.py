"""Configuration: the one place that reads the environment.

``Settings`` holds the server's settings (``PARLEY_*`` variables, or arguments) and the
provider configuration: built-in providers read their usual variables (``OPENAI_API_KEY``,
``OPENAI_BASE_URL``, ...), named ones come from ``[providers.NAME]`` tables in the TOML file
given by ``--config`` / ``PARLEY_CONFIG``.

MCP servers the operator registers come from ``[mcp_servers.LABEL]`` tables of the same file
(``MCPServerConfig``), read when ``Settings`` is made; the ``PARLEY_MCP_*`` variables bound
the MCP tools a request may run (their addresses, timeouts and sizes).

    settings.py      Settings: the fields, their checks, the providers they give
    tuning.py        Tuning: the internal intervals, constants that only tests change
    file.py          the config file, read once, each table handed to its model
    providers.py     the built-in providers, and a [providers.NAME] table's model
    mcp_servers.py   a [mcp_servers.LABEL] table's model
    embeddings.py    the default embedding model
    paths.py         the data directory, and files only their owner may read
    web.py           what ``parley web`` reads
    errors.py        ConfigError
"""

from parley.config.embeddings import (
    EMBEDDINGS_MODULES,
    LOCAL_EMBEDDING_MODEL,
    default_embedding_model,
    missing_embeddings_module,
)
from parley.config.errors import ConfigError
from parley.config.file import load_toml
from parley.config.mcp_servers import SERVER_LABEL, MCPServerConfig, MCPTransport
from parley.config.paths import (
    data_dir,
    default_database_url,
    make_private,
    private_dir,
    write_private,
)
from parley.config.providers import (
    BUILTIN_PROVIDERS,
    BuiltinProvider,
    ModelConfig,
    ProviderConfig,
    ProviderKind,
    ToolCalls,
)
from parley.config.settings import Settings
from parley.config.tuning import TUNING_VARIABLE, Tuning
from parley.config.web import WebSettings

__all__ = [
    "BUILTIN_PROVIDERS",
    "EMBEDDINGS_MODULES",
    "LOCAL_EMBEDDING_MODEL",
    "SERVER_LABEL",
    "TUNING_VARIABLE",
    "BuiltinProvider",
    "ConfigError",
    "MCPServerConfig",
    "MCPTransport",
    "ModelConfig",
    "ProviderConfig",
    "ProviderKind",
    "Settings",
    "ToolCalls",
    "Tuning",
    "WebSettings",
    "data_dir",
    "default_database_url",
    "default_embedding_model",
    "load_toml",
    "make_private",
    "missing_embeddings_module",
    "private_dir",
    "write_private",
]
