"""A bare Chat Completions relay: the floor any gateway is compared with.

    .venv/bin/python bench/relay.py --upstream http://127.0.0.1:PORT/v1 [--port 0]

``POST /v1/chat/completions`` is forwarded upstream as it came (the body untouched, the
upstream's key instead of the client's); a streamed answer is read line by line, every
``data:`` chunk parsed (``orjson.loads``) and sent on re-serialized (``orjson.dumps``), one
write per chunk, then ``data: [DONE]``. A non-streamed or failed answer is passed on whole.
``GET /healthz`` answers 200. No authentication, no accounting, no storage: one aiohttp
server and one pooled client session, on uvloop when it is installed. It prints
``listening on http://127.0.0.1:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator, Sequence

import orjson
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
_DONE = b"[DONE]"

SESSION = web.AppKey("session", ClientSession)


def create_app(upstream: str, api_key: str) -> web.Application:
    """The relay's app: ``upstream`` is the base URL (``http://HOST:PORT/v1``)."""
    url = upstream.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with request.app[SESSION].post(url, data=body, headers=headers) as answer:
            kind = answer.headers.get("Content-Type", "")
            if answer.status != 200 or not kind.startswith("text/event-stream"):
                return web.Response(
                    status=answer.status, body=await answer.read(), content_type="application/json"
                )
            response = web.StreamResponse(headers=_SSE_HEADERS)
            await response.prepare(request)
            async for line in answer.content:
                if not line.startswith(b"data:"):
                    continue  # blank separators, comments
                data = line[5:].strip()
                if data == _DONE:
                    await response.write(b"data: [DONE]\n\n")
                    break
                chunk = orjson.loads(data)
                await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            await response.write_eof()
            return response

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def session(app: web.Application) -> AsyncIterator[None]:
        connector = TCPConnector(limit=0, keepalive_timeout=60)
        async with ClientSession(connector=connector, timeout=ClientTimeout(total=600)) as s:
            app[SESSION] = s
            yield

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(host: str, port: int, upstream: str, api_key: str) -> None:
    runner = web.AppRunner(create_app(upstream, api_key), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="bench/relay.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True, help="upstream base URL, http://HOST:PORT/v1")
    p.add_argument("--api-key", default="sk-fake", help="the upstream's API key")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = p.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args.host, args.port, args.upstream, args.api_key))


if __name__ == "__main__":
    main()
