"""The address guard for MCP server URLs from requests (``parley.mcp.addresses``): the checks
on their own, then the guarded client over real sockets to loopback servers."""

from __future__ import annotations

import contextlib
import datetime
import re
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from parley.mcp.addresses import AddressPolicy, AddressRefused, Resolver, guarded_client_factory
from parley.testing.loopback import Connection, LoopbackServer, Received, Request

# ------------------------------------------------------------------ the checks on their own


def starting(message: str) -> str:
    """A ``match=`` pattern for an error message that starts with ``message``."""
    return "^" + re.escape(message)


REFUSED = [
    ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
    ("http://127.9.9.9:8080/", "127.9.9.9 is a loopback address"),
    ("http://[::1]/", "::1 is a loopback address"),
    ("http://10.0.0.1/", "10.0.0.1 is a private address"),
    ("http://172.16.5.4/", "172.16.5.4 is a private address"),
    ("http://192.168.1.1/", "192.168.1.1 is a private address"),
    ("http://100.64.0.1/", "100.64.0.1 is a private (carrier-grade NAT) address"),
    ("http://[fd12:3456::1]/", "fd12:3456::1 is a private (unique local) address"),
    ("http://169.254.1.1/", "169.254.1.1 is a link-local address"),
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a cloud metadata address"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254 is a cloud metadata address"),
    ("http://100.100.100.200/", "100.100.100.200 is a cloud metadata address"),
    ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
    ("http://[::]/", ":: is an unspecified address"),
    ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
    ("http://[ff02::1]/", "ff02::1 is a multicast address"),
    ("http://255.255.255.255/", "255.255.255.255 is the broadcast address"),
    ("http://240.0.0.1/", "240.0.0.1 is a reserved address"),
    ("http://192.0.2.1/", "192.0.2.1 is a reserved address"),  # documentation
    ("http://[2001:db8::1]/", "2001:db8::1 is a reserved address"),
    ("http://[::7f00:1]/", "::7f00:1 is a reserved address"),  # IPv4-compatible
    ("http://[4000::1]/", "4000::1 is a reserved address"),  # outside 2000::/3
    (
        "http://[::ffff:127.0.0.1]/",
        "::ffff:127.0.0.1 is a loopback address (127.0.0.1 inside IPv6)",
    ),
    (
        "http://[::ffff:169.254.169.254]/",
        "::ffff:169.254.169.254 is a cloud metadata address (169.254.169.254 inside IPv6)",
    ),
    ("http://[64:ff9b::a00:1]/", "64:ff9b::a00:1 is a private address (10.0.0.1 inside IPv6)"),
    ("http://[2002:7f00:1::]/", "2002:7f00:1:: is a loopback address (127.0.0.1 inside IPv6)"),
]


@pytest.mark.parametrize(("url", "message"), REFUSED)
async def test_a_literal_address_that_is_not_public_is_refused(url: str, message: str) -> None:
    policy = AddressPolicy()
    with pytest.raises(AddressRefused) as refused:
        policy.check_url(url)
    assert str(refused.value) == message
    host = httpx2.URL(url).host
    with pytest.raises(AddressRefused, match=starting(message)):
        await policy.resolve(host, 80)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "the scheme 'file' is not allowed (http or https only)"),
        ("ftp://example.com/x", "the scheme 'ftp' is not allowed (http or https only)"),
        ("ws://example.com/x", "the scheme 'ws' is not allowed (http or https only)"),
        ("http:///path", "the URL has no host"),
        ("http://exa mple.com/", "the URL's host is not a valid host name"),
        ("http://example.com:99999/", "the URL's port is not valid"),
        ("http://[zz]/", "the URL is not valid"),
    ],
)
def test_only_http_and_https_urls_with_a_host(url: str, message: str) -> None:
    with pytest.raises(AddressRefused, match=starting(message)):
        AddressPolicy().check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cret@example.com/mcp?token=t0ken",
        "https://user@example.com/",
        "https://:s3cret@93.184.215.14/",
    ],
)
def test_credentials_in_the_url_are_refused_without_repeating_them(url: str) -> None:
    with pytest.raises(AddressRefused) as refused:
        AddressPolicy.parse(["example.com", "93.184.215.14"]).check_url(url)
    assert str(refused.value) == "a URL with credentials (user:password@) is not allowed"
    assert refused.value.code == "address_refused"


def test_a_refusal_names_the_host_not_the_url() -> None:
    with pytest.raises(AddressRefused) as refused:
        AddressPolicy().check_url("http://10.0.0.1:8080/mcp?token=t0ken")
    assert str(refused.value) == "10.0.0.1 is a private address"
    assert refused.value.host == "10.0.0.1"


async def test_a_name_is_checked_by_what_it_resolves_to() -> None:
    policy = AddressPolicy()
    policy.check_url("http://localhost:8000/mcp")  # a name: nothing to say without DNS
    with pytest.raises(AddressRefused) as refused:
        await policy.resolve("localhost", 8000)
    assert str(refused.value) == "localhost resolves to 127.0.0.1, a loopback address"
    assert refused.value.host == "localhost"


async def test_an_odd_spelling_of_an_address_is_resolved_then_refused() -> None:
    with pytest.raises(
        AddressRefused, match=starting("2130706433 resolves to 127.0.0.1, a loopback")
    ):
        await AddressPolicy().resolve("2130706433", 80)


def answering(answers: dict[str, list[str]], asked: list[str] | None = None) -> Resolver:
    """A resolver with fixed answers (none for a name it does not know), noting each name
    it is asked for in ``asked``."""

    async def resolve(host: str, port: int) -> list[str]:
        if asked is not None:
            asked.append(host)
        return answers.get(host, [])

    return resolve


class Rebinding:
    """A resolver that answers each question with the next of its answers (a name whose
    answer changes between lookups, as in DNS rebinding); ``left`` holds those not given."""

    def __init__(self, *answers: list[str]) -> None:
        self.left = list(answers)

    async def __call__(self, host: str, port: int) -> list[str]:
        return self.left.pop(0)


async def test_public_addresses_pass_without_connecting() -> None:
    policy = AddressPolicy(
        resolver=answering({"public.example": ["93.184.215.14", "2606:4700::1"]})
    )
    policy.check_url("https://93.184.215.14/mcp")
    policy.check_url("http://[2606:4700::1]:8080/mcp")
    policy.check_url("https://[::ffff:93.184.215.14]/mcp")
    policy.check_url("https://public.example/mcp")
    assert await policy.resolve("93.184.215.14", 443) == ["93.184.215.14"]
    assert await policy.resolve("2606:4700::1", 443) == ["2606:4700::1"]
    assert await policy.resolve("public.example", 443) == ["93.184.215.14", "2606:4700::1"]
    assert await policy.resolve("Public.Example.", 443) == ["93.184.215.14", "2606:4700::1"]


async def test_one_refused_answer_refuses_the_name_and_no_answer_too() -> None:
    policy = AddressPolicy(
        resolver=answering({"mixed.example": ["93.184.215.14", "10.0.0.7", "93.184.215.15"]})
    )
    with pytest.raises(
        AddressRefused, match=starting("mixed.example resolves to 10.0.0.7, a private")
    ):
        await policy.resolve("mixed.example", 443)
    with pytest.raises(
        AddressRefused, match=starting("nowhere.example does not resolve to any address")
    ):
        await policy.resolve("nowhere.example", 443)


# ------------------------------------------------------------------------------ allowlist


def test_allowlist_entries_parse() -> None:
    entries = [
        " mcp.internal ",
        "MCP2.Internal.:8080",
        "10.1.2.3",
        "10.1.2.4:9000",
        "fd00::1",
        "[fd00::2]",
        "[fd00::3]:8443",
        "192.168.0.0/16",
        "fd00:1::/32",
        "bücher.example",
        "",
    ]
    policy = AddressPolicy.parse(entries)
    assert policy.allow == tuple(entry.strip() for entry in entries if entry.strip())
    assert AddressPolicy.parse([]) == AddressPolicy()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("http://mcp.internal", "not a URL"),
        ("user@mcp.internal", "not a URL"),
        ("10.0.0.1/8", "is not a CIDR range: 10.0.0.1/8 has host bits set"),
        ("mcp/internal", "is not a CIDR range"),
        ("mcp.internal:99999", "'99999' is not a port"),
        ("mcp.internal:http", "'http' is not a port"),
        ("mcp.internal:", "'' is not a port"),
        ("[fd00::1", r"expected \[IPv6\] or \[IPv6\]:port"),
        ("[fd00::1]8080", r"expected \[IPv6\] or \[IPv6\]:port"),
        ("[mcp.internal]:80", r"expected \[IPv6\] or \[IPv6\]:port"),
        ("mcp internal", "is not a host name, host:port, IP address or CIDR range"),
        ("-mcp.internal", "is not a host name, host:port, IP address or CIDR range"),
        ("mcp..internal", "is not a host name, host:port, IP address or CIDR range"),
    ],
)
def test_a_bad_allowlist_entry_says_which_and_why(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as bad:
        AddressPolicy.parse(["mcp.ok", entry])
    assert repr(entry) in str(bad.value)


async def test_allowlisted_addresses_ranges_and_ports() -> None:
    policy = AddressPolicy.parse(["10.0.0.0/8", "127.0.0.1:8080", "fd00::1", "[::1]:9000"])
    policy.check_url("http://10.200.0.1/")
    policy.check_url("http://127.0.0.1:8080/")
    policy.check_url("http://[::ffff:127.0.0.1]:8080/")  # the same address, mapped
    policy.check_url("https://[fd00::1]/")
    policy.check_url("http://[::1]:9000/")
    for url in ("http://127.0.0.1:8081/", "http://127.0.0.1/", "http://[::1]:9001/"):
        with pytest.raises(AddressRefused, match="is a loopback address"):
            policy.check_url(url)
    with pytest.raises(AddressRefused, match="is a private"):
        policy.check_url("http://[fd00::2]/")
    assert await policy.resolve("10.9.9.9", 443) == ["10.9.9.9"]


async def test_an_allowlisted_name_reaches_what_it_resolves_to_on_its_port() -> None:
    resolver = answering({"mcp.internal": ["10.0.0.5"], "bare.internal": ["127.0.0.1"]})
    policy = AddressPolicy(allow=("mcp.internal:8080", "BARE.internal."), resolver=resolver)
    assert await policy.resolve("mcp.internal", 8080) == ["10.0.0.5"]
    assert await policy.resolve("bare.internal", 1) == ["127.0.0.1"]
    with pytest.raises(
        AddressRefused, match=starting("mcp.internal resolves to 10.0.0.5, a private")
    ):
        await policy.resolve("mcp.internal", 8081)
    policy.check_url("http://mcp.internal:8080/")


async def test_an_allowlisted_address_admits_a_name_resolving_to_it() -> None:
    policy = AddressPolicy.parse(["127.0.0.1"])
    assert await policy.resolve("localhost", 80) == ["127.0.0.1"]
    assert await policy.resolve("localhost.", 80) == ["127.0.0.1"]


# -------------------------------------------------------- the guarded client, on loopback


class Recorder:
    """A loopback server's handler: notes each request, answers 200 (or a redirect)."""

    def __init__(self, redirect_to: str | None = None, *, keep: bool = True) -> None:
        self.seen: list[Received] = []
        self.redirect_to = redirect_to
        self.keep = keep

    async def __call__(self, request: Request, conn: Connection) -> bool:
        self.seen.append(Received.of(request))
        if self.redirect_to is not None:
            await conn.send(307, b"", headers={"location": self.redirect_to})
            return True
        await conn.send_json(200, {"host": request.headers.get("host")}, keep=self.keep)
        return self.keep


@contextlib.asynccontextmanager
async def serving(
    recorder: Recorder, *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> AsyncIterator[LoopbackServer]:
    async with LoopbackServer(recorder, host=host, tls=tls) as server:
        yield server


def client(policy: AddressPolicy) -> httpx2.AsyncClient:
    return guarded_client_factory(policy)({"x-test": "1"}, httpx2.Timeout(5.0))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_a_loopback_server_not_allowlisted_sees_nothing(host: str) -> None:
    recorder = Recorder()
    async with serving(recorder) as server, client(AddressPolicy()) as http:
        with pytest.raises(AddressRefused, match="loopback"):
            await http.get(f"http://{host}:{server.port}/mcp")
        assert (server.connections, recorder.seen) == (0, [])


@pytest.mark.parametrize(
    ("entry", "host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.0/8", "127.0.0.1"),
        ("127.0.0.1:{port}", "127.0.0.1"),
        ("localhost:{port}", "localhost"),
        ("127.0.0.1", "localhost"),
    ],
)
async def test_an_allowlisted_loopback_server_is_reached_with_its_host_header(
    entry: str, host: str
) -> None:
    recorder = Recorder()
    async with serving(recorder) as server:
        policy = AddressPolicy.parse([entry.format(port=server.port)])
        async with client(policy) as http:
            answer = await http.get(f"http://{host}:{server.port}/mcp")
    assert answer.status_code == 200
    assert [
        (seen.target, seen.headers["host"], seen.headers["x-test"]) for seen in recorder.seen
    ] == [("/mcp", f"{host}:{server.port}", "1")]


@pytest.mark.parametrize(("second_allowed", "outcome"), [(False, "refused"), (True, "reached")])
async def test_every_redirect_hop_is_checked(second_allowed: bool, outcome: str) -> None:
    second = Recorder()
    async with serving(second) as target:
        first = Recorder(redirect_to=f"http://localhost:{target.port}/next")
        async with serving(first) as start:
            allow = [f"127.0.0.1:{start.port}"]
            if second_allowed:
                allow.append(f"localhost:{target.port}")
            async with client(AddressPolicy.parse(allow)) as http:
                if outcome == "refused":
                    with pytest.raises(
                        AddressRefused, match=starting("localhost resolves to 127.0.0.1")
                    ):
                        await http.get(f"{start.url}/mcp", follow_redirects=True)
                else:
                    answer = await http.get(f"{start.url}/mcp", follow_redirects=True)
                    assert answer.json() == {"host": f"localhost:{target.port}"}
    assert [seen.target for seen in first.seen] == ["/mcp"]
    assert [seen.target for seen in second.seen] == ([] if outcome == "refused" else ["/next"])
    assert target.connections == (0 if outcome == "refused" else 1)


async def test_a_redirect_to_a_url_with_credentials_is_refused() -> None:
    second = Recorder()
    async with serving(second) as target:
        first = Recorder(redirect_to=f"http://user:pw@127.0.0.1:{target.port}/next")
        async with serving(first) as start, client(AddressPolicy.parse(["127.0.0.1"])) as http:
            with pytest.raises(AddressRefused, match="credentials"):
                await http.get(f"{start.url}/mcp", follow_redirects=True)
    assert (len(first.seen), target.connections) == (1, 0)


async def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    """``mcp.test`` is a name no system resolver knows: the request reaches the loopback
    server only because the connection goes to the address the policy's resolver gave."""
    recorder = Recorder()
    asked: list[str] = []
    async with serving(recorder) as server:
        policy = AddressPolicy(
            allow=("127.0.0.1",), resolver=answering({"mcp.test": ["127.0.0.1"]}, asked)
        )
        async with client(policy) as http:
            assert (await http.get(f"http://mcp.test:{server.port}/a")).status_code == 200
            assert (await http.get(f"http://mcp.test:{server.port}/b")).status_code == 200
    assert [seen.headers["host"] for seen in recorder.seen] == [f"mcp.test:{server.port}"] * 2
    assert (asked, server.connections) == (["mcp.test"], 1)  # one connection, kept alive


async def test_each_new_connection_resolves_and_checks_again() -> None:
    """A name whose answer changes (DNS rebinding) is checked on the answer that is used."""
    recorder = Recorder(keep=False)  # each answer closes its connection
    async with serving(recorder) as server:
        resolver = Rebinding(["127.0.0.1"], ["10.0.0.9"])
        async with client(AddressPolicy(allow=("127.0.0.1",), resolver=resolver)) as http:
            assert (await http.get(f"http://mcp.test:{server.port}/a")).status_code == 200
            with pytest.raises(
                AddressRefused, match=starting("mcp.test resolves to 10.0.0.9, a private")
            ):
                await http.get(f"http://mcp.test:{server.port}/b")
    assert ([seen.target for seen in recorder.seen], resolver.left) == (["/a"], [])


# ------------------------------------------------------------------------------------ TLS


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (and its key), good for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextlib.contextmanager
def _tls_context(cert: tuple[Path, Path], sni: list[str | None]) -> Iterator[ssl.SSLContext]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*cert)

    def note(_socket: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
        sni.append(server_name)

    context.sni_callback = note
    yield context


@pytest.mark.parametrize(("cert_name", "reached"), [("mcp.test", True), ("other.test", False)])
async def test_tls_names_the_host_while_connecting_to_the_checked_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cert_name: str, reached: bool
) -> None:
    """The TLS server name and the certificate check are on ``mcp.test`` (the URL's host),
    though the connection goes to 127.0.0.1: a certificate for another name fails."""
    cert = _certificate(tmp_path, cert_name)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))  # trusted like a system CA
    sni: list[str | None] = []
    recorder = Recorder()
    policy = AddressPolicy(allow=("127.0.0.1",), resolver=answering({"mcp.test": ["127.0.0.1"]}))
    with _tls_context(cert, sni) as tls:
        async with serving(recorder, tls=tls) as server, client(policy) as http:
            url = f"https://mcp.test:{server.port}/mcp"
            if reached:
                assert (await http.get(url)).json() == {"host": f"mcp.test:{server.port}"}
            else:
                with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await http.get(url)
    assert sni == ["mcp.test"]
    assert len(recorder.seen) == (1 if reached else 0)
