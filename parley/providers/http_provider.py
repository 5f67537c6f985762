"""``HTTPProvider``, the base of the adapters over HTTP, and ``json_getter``, the reads of
what an API says of its models.

The streamed calls go through ``HTTPTransport`` (``transport``); the failures are worded
in ``upstream_errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import aiohttp
import orjson

from parley.errors import UpstreamError
from parley.providers.http_response import TRANSPORT_ERRORS, AiohttpResponse
from parley.providers.transport import HTTPTransport, RetryPolicy, env_proxy
from parley.providers.upstream_errors import (
    DEFAULT_LABEL,
    clashing,
    credentials_clash,
    credentials_in,
    malformed,
    mask,
    shown_url,
    status_error,
    transport_error,
)

__all__ = ["GetJSON", "HTTPProvider", "json_getter"]


class GetJSON(Protocol):
    """One JSON document of ``json_getter``: ``get(url, headers, params)`` GETs it; with
    ``post``, that JSON body is POSTed instead (Ollama describes a model on request); with
    ``none_if_missing``, an HTTP 404 answers None."""

    def __call__(
        self,
        url: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        *,
        post: Any = None,
        none_if_missing: bool = False,
    ) -> Awaitable[Any]: ...


#: Seconds to wait for each read of a model list.
_LIST_READ_TIMEOUT = 10.0


@asynccontextmanager
async def json_getter(
    *,
    connect_timeout: float,
    message_from_body: Callable[[Any], str],
    provider_label: str = DEFAULT_LABEL,
) -> AsyncIterator[GetJSON]:
    """Reads of JSON documents about models (lists, page by page, and descriptions;
    ``GetJSON``) on one short-lived session, through the proxy the environment names, as
    ``HTTPTransport``'s calls. Every failure is an ``UpstreamError``, worded as for a model
    call: the answer's status with the upstream's own message, an unreachable server, or a
    body that is not JSON."""
    timeout = aiohttp.ClientTimeout(
        total=None, connect=connect_timeout, sock_read=_LIST_READ_TIMEOUT
    )
    async with aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as http:

        async def get(
            url: str,
            headers: Mapping[str, str],
            params: Mapping[str, str] | None = None,
            *,
            post: Any = None,
            none_if_missing: bool = False,
        ) -> Any:
            where = f"{provider_label} at {shown_url(url)}"
            if clashing(url, headers):
                raise credentials_clash(where)
            proxy, proxy_auth = await asyncio.to_thread(env_proxy, url)
            body = None
            if post is not None:
                body = orjson.dumps(post)
                headers = {**headers, "Content-Type": "application/json"}
            try:
                async with http.request(
                    "GET" if body is None else "POST",
                    url,
                    headers=headers,
                    params=params,
                    data=body,
                    proxy=proxy,
                    proxy_auth=proxy_auth,
                ) as response:
                    if response.status == 404 and none_if_missing:
                        return None
                    if response.status >= 400:
                        error = await status_error(
                            AiohttpResponse(response), message_from_body, provider_label=where
                        )
                        mask(error, credentials_in(url, headers))
                        raise error
                    return await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise transport_error(
                    exc,
                    started=False,
                    provider_label=where,
                    connect_timeout=connect_timeout,
                    read_timeout=_LIST_READ_TIMEOUT,
                ) from None
            except ValueError:
                raise malformed("a model list that is not JSON", provider_label=where) from None

        yield get


class HTTPProvider:
    """What the adapters over HTTP share: their transports (one per streaming URL, made on
    first use and kept until ``aclose``), the headers of every call (``auth``, then the
    caller's ``headers``, which win), and the GETs that list models. A subclass names its
    ``label`` (used in error messages) and what it ``accept``s, and builds its URLs."""

    label = DEFAULT_LABEL
    accept = "text/event-stream"
    #: Request options its API has no equivalent for (OpenAI's names: ``seed``, ``stop``,
    #: ``presence_penalty``, ``frequency_penalty``; ``json``: a JSON output format).
    refused_options: frozenset[str] = frozenset()
    #: Whether its answers may carry state to hand back with their tool calls
    #: (``StatePart``: signed thinking, thought signatures, reasoning items).
    hands_back_state = False

    def __init__(
        self,
        *,
        auth: Mapping[str, str],
        headers: Mapping[str, str] | None,
        connect_timeout: float,
        read_timeout: float,
        session: aiohttp.ClientSession | None,
        retry: RetryPolicy,
    ) -> None:
        #: What a GET of the model list sends: the key and the caller's headers.
        self._list_headers = {**auth, **(headers or {})}
        self._wire_headers = {
            "Content-Type": "application/json",
            "Accept": self.accept,
            **self._list_headers,
        }
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._session = session
        self._retry = retry
        self._transports: dict[str, HTTPTransport] = {}
        #: Transports of the calls answered by one JSON document (``_post_json``).
        self._json_transports: dict[str, HTTPTransport] = {}

    def _transport(self, url: str) -> HTTPTransport:
        """The transport to ``url``, made on first use."""
        http = self._transports.get(url)
        if http is None:
            http = self._transports[url] = HTTPTransport(
                url,
                self._wire_headers,
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                session=self._session,
                provider_label=self.label,
                retry=self._retry,
            )
        return http

    def _lister(
        self, message_from_body: Callable[[Any], str]
    ) -> contextlib.AbstractAsyncContextManager[GetJSON]:
        """Reads of what the API says of its models (``json_getter``), worded as this
        provider's."""
        return json_getter(
            connect_timeout=self._connect_timeout,
            message_from_body=message_from_body,
            provider_label=self.label,
        )

    async def _post_json(
        self, url: str, payload: Any, message_from_body: Callable[[Any], str], *, what: str
    ) -> Any:
        """POST ``payload`` as JSON and answer the JSON document the upstream sends back
        (embeddings: not streamed). Tried again as the retry policy says (the call changes
        nothing upstream); every failure is an ``UpstreamError``: the answer's status with
        the upstream's own message, an unreachable server, or a body that is not JSON
        (``what`` names what was expected)."""
        http = self._json_transports.get(url)
        if http is None:
            http = self._json_transports[url] = HTTPTransport(
                url,
                {**self._wire_headers, "Accept": "application/json"},
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                session=self._session,
                provider_label=self.label,
                retry=self._retry,
            )
        try:
            response = await http.post(orjson.dumps(payload))
        except TRANSPORT_ERRORS as exc:
            raise http.error(exc, started=False) from exc
        reusable = False
        try:
            if response.status >= 300:
                error = await status_error(response, message_from_body, provider_label=http.where)
                mask(error, http.secrets)
                reusable = True
                raise error
            raw = await response.read()
            reusable = True
        except TRANSPORT_ERRORS as exc:
            raise http.error(exc, started=True) from exc
        finally:
            if reusable:
                response.release()
            else:
                response.close()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"The {http.where} sent {what} that is not JSON.", code="upstream_malformed"
            ) from None

    async def aclose(self) -> None:
        """Close the HTTP clients this provider opened (a later call opens new ones)."""
        transports, self._transports = list(self._transports.values()), {}
        transports += self._json_transports.values()
        self._json_transports = {}
        for http in transports:
            await http.aclose()
