"""``parley webhooks``: endpoints made and managed on the database, delivered by the server."""

from __future__ import annotations

import json

import openai

from tests.harness import ParleyServer
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_webhooks import background_response, wait_until


def test_endpoints_made_by_the_cli_are_delivered_to(
    hooks_server: ParleyServer, receiver: Receiver
) -> None:
    srv = hooks_server
    made = srv.cli("users", "create", "hooked")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    users = json.loads(srv.cli("users", "list", "--json").stdout)
    user_id = next(u["id"] for u in users if u["name"] == "hooked")

    refused = srv.cli(
        "webhooks", "create", "--user", user_id, "--url", "http://10.1.2.3/x",
        "--events", "response.completed",
    )  # fmt: skip
    assert refused.returncode == 2 and "private address" in refused.stderr, refused.stderr
    unknown = srv.cli(
        "webhooks", "create", "--user", user_id, "--url", receiver.endpoint("/cli"),
        "--events", "response.completed,response.nope",
    )  # fmt: skip
    assert unknown.returncode == 2 and "response.nope" in unknown.stderr, unknown.stderr

    created = srv.cli(
        "webhooks", "create", "--user", user_id, "--url", receiver.endpoint("/cli"),
        "--events", "response.completed,response.failed",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    first, secret = created.stdout.strip().splitlines()[-2:]
    webhook_id = first.split()[0]
    assert secret.startswith("whsec_")
    listed = json.loads(srv.cli("webhooks", "list", "--user", user_id, "--json").stdout)
    assert [e["id"] for e in listed] == [webhook_id]
    assert "secret" not in listed[0]

    with srv.client(key) as http:
        response_id = background_response(http)
    (got,) = receiver.wait_for("/cli", 1)
    event = openai.OpenAI(api_key="unused", webhook_secret=secret).webhooks.unwrap(
        got.body, got.headers
    )
    assert event.data.id == response_id

    def delivered() -> list[dict[str, object]]:
        shown = srv.cli("webhooks", "deliveries", webhook_id, "--user", user_id, "--json")
        assert shown.returncode == 0, shown.stderr
        data: list[dict[str, object]] = json.loads(shown.stdout)
        return data

    wait_until(lambda: [d["status"] for d in delivered()] == ["delivered"])
    delivery_id = str(delivered()[0]["id"])
    replayed = srv.cli("webhooks", "replay", webhook_id, delivery_id, "--user", user_id)
    assert replayed.returncode == 0, replayed.stderr
    receiver.wait_for("/cli", 2)

    rotated = srv.cli("webhooks", "rotate-secret", webhook_id, "--user", user_id)
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip().splitlines()[-1] not in (secret, "")

    other = srv.cli("webhooks", "delete", webhook_id, "--user", "user_nobody")
    assert other.returncode == 1, other.stderr
    gone = srv.cli("webhooks", "delete", webhook_id, "--user", user_id)
    assert gone.returncode == 0, gone.stderr
    assert json.loads(srv.cli("webhooks", "list", "--user", user_id, "--json").stdout) == []
