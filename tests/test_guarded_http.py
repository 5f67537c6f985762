"""The aiohttp sessions of webhook deliveries and web search (``parley.guarded_http``), over
real sockets to loopback servers: the address policy on every request, and a session
without one."""

from __future__ import annotations

import pytest

from parley.guarded_http import client_session
from parley.mcp.addresses import AddressPolicy, AddressRefused
from tests.mcp.test_addresses import Rebinding, Recorder, answering, serving, starting


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost"])
async def test_a_loopback_server_not_allowlisted_sees_nothing(host: str) -> None:
    recorder = Recorder()
    async with serving(recorder) as server, client_session(AddressPolicy(), timeout=5) as http:
        with pytest.raises(AddressRefused, match="loopback"):
            await http.get(f"http://{host}:{server.port}/hook")
    assert (server.connections, recorder.seen) == (0, [])


async def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    policy = AddressPolicy(resolver=answering({"hooks.example": ["93.184.215.14", "10.0.0.7"]}))
    async with client_session(policy, timeout=5) as http:
        with pytest.raises(
            AddressRefused, match=starting("hooks.example resolves to 10.0.0.7, a private")
        ):
            await http.post("http://hooks.example/hook", data=b"{}")


async def test_a_proxy_named_by_the_caller_is_refused_before_it_is_reached() -> None:
    """The policy checks the target; a proxy would carry the request past it, so a guarded
    session sends through none, even one the caller names (here a loopback listener)."""
    recorder = Recorder()
    async with serving(recorder) as proxy, client_session(AddressPolicy(), timeout=5) as http:
        with pytest.raises(AddressRefused, match="proxy"):
            await http.get("http://93.184.215.14/hook", proxy=f"http://127.0.0.1:{proxy.port}")
    assert (proxy.connections, recorder.seen) == (0, [])


@pytest.mark.parametrize(
    ("entry", "host"),
    [("127.0.0.1", "127.0.0.1"), ("127.0.0.0/8", "localhost"), ("localhost:{port}", "localhost")],
)
async def test_what_the_operator_allows_is_reached_with_its_host_header(
    entry: str, host: str
) -> None:
    recorder = Recorder()
    async with serving(recorder) as server:
        policy = AddressPolicy.parse([entry.format(port=server.port)])
        async with (
            client_session(policy, timeout=5, headers={"x-test": "1"}) as http,
            http.post(f"http://{host}:{server.port}/hook", data=b"{}") as answer,
        ):
            assert answer.status == 200
    assert [
        (seen.target, seen.headers["host"], seen.headers["x-test"]) for seen in recorder.seen
    ] == [("/hook", f"{host}:{server.port}", "1")]


async def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    """``hooks.test`` is a name no system resolver knows: the request reaches the loopback
    server only because the connection goes to the address the policy's resolver gave."""
    recorder = Recorder()
    asked: list[str] = []
    async with serving(recorder) as server:
        policy = AddressPolicy(
            allow=("127.0.0.1",), resolver=answering({"hooks.test": ["127.0.0.1"]}, asked)
        )
        async with client_session(policy, timeout=5) as http:
            for path in ("/a", "/b"):
                async with http.get(f"http://hooks.test:{server.port}{path}") as answer:
                    assert answer.status == 200
                    await answer.read()
    assert [seen.headers["host"] for seen in recorder.seen] == [f"hooks.test:{server.port}"] * 2
    assert (asked, server.connections) == (["hooks.test"], 1)  # one connection, kept alive


async def test_each_new_connection_resolves_and_checks_again() -> None:
    """A name whose answer changes (DNS rebinding) is judged by the answer that is used."""
    recorder = Recorder(keep=False)  # each answer closes its connection
    async with serving(recorder) as server:
        resolver = Rebinding(["127.0.0.1"], ["10.0.0.9"])
        policy = AddressPolicy(allow=("127.0.0.1",), resolver=resolver)
        async with client_session(policy, timeout=5) as http:
            async with http.get(f"http://hooks.test:{server.port}/a") as answer:
                assert answer.status == 200
                await answer.read()
            with pytest.raises(
                AddressRefused, match=starting("hooks.test resolves to 10.0.0.9, a private")
            ):
                await http.get(f"http://hooks.test:{server.port}/b")
    assert ([seen.target for seen in recorder.seen], resolver.left) == (["/a"], [])


async def test_every_redirect_hop_is_checked() -> None:
    second = Recorder()
    async with serving(second) as target:
        first = Recorder(redirect_to=f"http://localhost:{target.port}/next")
        async with serving(first) as start:
            policy = AddressPolicy.parse([f"127.0.0.1:{start.port}"])
            async with client_session(policy, timeout=5) as http:
                with pytest.raises(
                    AddressRefused, match=starting("localhost resolves to 127.0.0.1")
                ):
                    await http.get(f"{start.url}/hook")
    assert ([seen.target for seen in first.seen], target.connections) == (["/hook"], 0)


async def test_without_a_policy_any_address_is_reached() -> None:
    """The search service's URL is the operator's: its session has no policy."""
    recorder = Recorder()
    async with (
        serving(recorder) as server,
        client_session(None, timeout=5) as http,
        http.get(f"{server.url}/search") as answer,
    ):
        assert (answer.status, await answer.json()) == (200, {"host": server.url[7:]})
