"""The ``local`` provider: models that run on this machine, with nothing to sign up for.

Two models, each loaded the first time it is used:

- a chat model served by a llama.cpp ``llama-server`` that Parley runs itself
  (``llama_server.ModelServer``): the packaged SmolLM2-135M-Instruct unless the config's
  ``model`` names another GGUF. It is asked as ``local/<name>`` (``llama_server.model_name``)
  through the Chat Completions adapter; its tool calls are constrained JSON by default
  (``ProviderConfig.tool_calls``, ``parley.providers.constrained``), since small models
  have no tool calling of their own.
- the embedding model ``local/all-minilm-l6-v2`` (``parley.providers.minilm``), run in
  this process. The chat model embeds too when its server is started with
  ``--embeddings`` (``server_args``).

Docs: docs/local-models.md.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path

import aiohttp

from parley.config import ProviderConfig
from parley.errors import InvalidRequest, UpstreamError
from parley.events import ModelEvent, TextPart, ToolCallPart, UsagePart
from parley.metrics import Metrics
from parley.providers import llama_server
from parley.providers.base import ModelRequest
from parley.providers.embeddings import EmbedRequest, EmbedResult
from parley.providers.local_models import (
    EMBEDDING_MODEL,
    embedding_problem,
    server_spec,
)
from parley.providers.openai_chat import OpenAIChatProvider


class LocalProvider:
    """The chat model of a llama-server this provider runs, and the in-process embedder."""

    #: Embeddings: inputs per call (the embedder batches further itself).
    embed_batch = 256
    takes_token_ids = False

    def __init__(self, *, config: ProviderConfig, metrics: Metrics | None = None) -> None:
        self.config = config
        self._metrics = metrics or Metrics()
        spec = server_spec(config)
        #: Why the chat model cannot run (None: it can).
        self.problem = spec if isinstance(spec, str) else None
        self.chat_model = llama_server.model_name(config.model)
        self._server = (
            None
            if isinstance(spec, str)
            else llama_server.ModelServer(
                spec,
                on_up=self._metrics.local_model_up,
                on_restart=self._metrics.local_model_restarted,
            )
        )
        self._chat: OpenAIChatProvider | None = None
        self._session: aiohttp.ClientSession | None = None
        self._chat_url = ""

    @property
    def server(self) -> llama_server.ModelServer | None:
        return self._server

    async def list_models(self) -> list[str]:
        """The model ids that can run here (without ``local/``)."""
        return sorted(await self.model_listing())

    def start_soon(self) -> None:
        """Start the model server now, in the background (``make run LOCAL_MODEL=1``)."""
        if self._server is not None:
            self._server.start_soon()

    async def _adapter(self) -> OpenAIChatProvider:
        if self._server is None:
            raise UpstreamError(
                f"The local model cannot run: {self.problem}.", code="upstream_unreachable"
            )
        url = await self._server.url()
        if self._chat is None or url != self._chat_url:
            await self._close_chat()
            # Loopback to a process of our own: no retries (a restart is the watcher's),
            # no proxy, and a new connection for each call: llama-server closes its
            # connection after a stream without saying so, and a call on that pooled
            # connection would fail (a loopback connection costs tens of microseconds).
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, limit=0)
            )
            self._chat = OpenAIChatProvider(
                base_url=url,
                api_key=self._server.api_key,
                connect_timeout=self.config.connect_timeout,
                read_timeout=self.config.read_timeout,
                session=self._session,
            )
            self._chat.label = "local model server"
            self._chat_url = url
        return self._chat

    def _not_served(self, model: str) -> UpstreamError:
        return UpstreamError(
            f"The local provider serves local/{self.chat_model} and "
            f"local/{EMBEDDING_MODEL}, not local/{model}.",
            code="upstream_not_found",
        )

    def _check_chat(self, model: str) -> None:
        if model == EMBEDDING_MODEL:
            raise InvalidRequest(
                f"local/{EMBEDDING_MODEL} is an embedding model; the local chat model is "
                f"local/{self.chat_model}.",
                code="model_not_chat",
                param="model",
            )
        if model != self.chat_model:
            raise self._not_served(model)

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        """The chat model's events, measuring its speed for ``/metrics``."""
        self._check_chat(request.model)
        adapter = await self._adapter()
        first: float | None = None
        tokens = 0
        async with aclosing(adapter.stream(request)) as events:
            async for event in events:
                if first is None and isinstance(event, TextPart | ToolCallPart):
                    first = time.perf_counter()
                if isinstance(event, UsagePart):
                    tokens = event.output_tokens
                yield event
        if first is not None and tokens > 1:
            seconds = time.perf_counter() - first
            if seconds > 0:
                self._metrics.local_model_speed((tokens - 1) / seconds)

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        """Vectors from the in-process MiniLM, or from the chat model's server when it was
        started to embed (``--embeddings``)."""
        if request.model == EMBEDDING_MODEL:
            from parley.providers import minilm

            return await minilm.shared().embed(request)
        self._check_chat_embeds(request.model)
        adapter = await self._adapter()
        return await adapter.embed(request)

    def _check_chat_embeds(self, model: str) -> None:
        if model != self.chat_model:
            raise self._not_served(model)
        if not {"--embedding", "--embeddings"} & set(self.config.server_args):
            raise InvalidRequest(
                f"local/{self.chat_model} embeds only when its server is started to: add "
                '"--embeddings", "--pooling", "mean" to server_args of the local provider, '
                f"or use local/{EMBEDDING_MODEL}.",
                code="embeddings_unsupported",
                param="model",
            )

    def model_details(self, model: str) -> dict[str, object]:
        """What ``/v1/models`` says of ``model`` beyond its id: a description a person can
        choose by, and whether it is an embedding model (a chat picker leaves those out)."""
        if model == EMBEDDING_MODEL:
            return {
                "description": "all-MiniLM-L6-v2: 384-dimension sentence embeddings, in process",
                "embedding": True,
            }
        if model == self.chat_model and self.config.model is None:
            return {
                "description": "SmolLM2-135M-Instruct on this machine: a 135M model, small and "
                "fast, for trying things offline; often wrong"
            }
        if model == self.chat_model:
            return {"description": f"{Path(self.config.model or '').name} on this machine"}
        return {}

    async def model_listing(self) -> dict[str, int | None]:
        """The models that can run here, with their context windows, without starting the
        server: the chat model's is a slot's share of the server's context."""
        listing: dict[str, int | None] = {}
        if self._server is not None:
            listing[self.chat_model] = self._server.spec.slot_context
        if embedding_problem() is None:
            listing[EMBEDDING_MODEL] = None
        return listing

    async def _close_chat(self) -> None:
        if self._chat is not None:
            await self._chat.aclose()
        if self._session is not None:
            await self._session.close()
        self._chat = self._session = None

    async def aclose(self) -> None:
        await self._close_chat()
        if self._server is not None:
            await self._server.aclose()
