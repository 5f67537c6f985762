"""Hostile code through the API, as an attacker (or a prompt-injected model) sends it: a real
server with secrets in its environment, the Responses API with the code interpreter, and
the demo model running what follows ``python``. Each attack is checked from outside: what
came back, the server's health, and the next call in the same container."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
import pytest_asyncio

from tests.code_interpreter.conftest import LIMITS, needs_sandbox
from tests.e2e.responses_providers_helpers import serving_with
from tests.harness import ParleyServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

AUTO = {"type": "code_interpreter", "container": {"type": "auto"}}
INCLUDE = ["code_interpreter_call.outputs"]
#: What the server's environment holds and no code may read.
SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-5b1e0c",
    "PARLEY_TEST_HOST_SECRET": "sk-host-secret-5b1e0c",
}


class Served:
    def __init__(self, server: ParleyServer, sdk: openai.AsyncOpenAI) -> None:
        self.server, self.sdk = server, sdk

    async def run(self, code: str, previous: str | None = None) -> tuple[Any, str]:
        """The response to ``python <code>``, and its call's logs."""
        response = await self.sdk.responses.create(
            model="demo/parley",
            input=f"python {code}",
            tools=[AUTO],  # type: ignore[list-item]
            include=INCLUDE,  # type: ignore[list-item]
            previous_response_id=previous,
        )
        assert response.status == "completed", response
        (call,) = [i for i in response.output if i.type == "code_interpreter_call"]
        return response, "".join(o.logs for o in call.outputs or () if o.type == "logs")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    needs_sandbox()
    tmp = tmp_path_factory.mktemp("hostile")
    # Time for the memory attack's gigabyte on a loaded machine.
    env = {**LIMITS, **SECRETS, "PARLEY_CODE_INTERPRETER_CALL_TIMEOUT": "30"}
    async with serving_with(tmp, {}, env) as (server, http):
        key = http.headers["Authorization"].removeprefix("Bearer ")
        sdk = openai.AsyncOpenAI(
            base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, timeout=60
        )
        try:
            yield Served(server, sdk)
        finally:
            await sdk.close()


async def test_no_process_in_the_sandbox_shows_the_servers_environment(served: Served) -> None:
    """The attack of the report: /proc/1/environ (bubblewrap's init) printed every
    variable of the server."""
    _, logs = await served.run(
        "import os\n"
        "for p in sorted(os.listdir('/proc')):\n"
        "    if p.isdigit():\n"
        "        for name in ('environ', 'cmdline'):\n"
        "            try:\n"
        "                print(p, name, open(f'/proc/{p}/{name}', 'rb').read())\n"
        "            except OSError as e:\n"
        "                print(p, name, 'refused', e.errno)\n"
        "print(dict(os.environ))"
    )
    assert "1 environ b''" in logs, logs
    for key, value in SECRETS.items():
        assert value not in logs and key not in logs, logs
    assert str(served.server.workdir) not in logs  # no folder of the server's


async def test_forked_children_meet_the_containers_memory_and_the_next_call_works(
    served: Served,
) -> None:
    """Four children of 320 MiB each, each under the per-process limit, over the
    container's 1 GiB together: the call ends naming the memory bound; the server stays
    healthy and the same conversation's next call runs."""
    response, logs = await served.run(
        "import os, time\nkids = []\n"
        "for _ in range(4):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        held = b'\\x01' * (320 << 20)\n"
        "        time.sleep(3)\n"
        "        os._exit(0)\n"
        "    kids.append(pid)\n"
        "for pid in kids:\n"
        "    os.waitpid(pid, 0)\n"
        "print('all children ended')"
    )
    assert "used more than its 1 GiB of memory" in logs, logs
    assert "all children ended" not in logs
    _, after = await served.run("print('still here')", previous=response.id)
    assert "still here" in after, after
    health = await served.sdk._client.get(f"{served.server.base_url}/healthz")
    assert health.status_code == 200


async def test_parleys_own_item_names_the_bound_a_call_met(served: Served) -> None:
    """On Parley's own API the call's item says which bound stopped it (``limit``), beside
    its error; the Responses shape, OpenAI's, has no such field."""
    http = served.sdk._client
    base = f"{served.server.base_url}/v1"
    headers = {"Authorization": f"Bearer {served.sdk.api_key}"}
    made = await http.post(
        f"{base}/assistants", json={"model": "demo/parley", "tools": [AUTO]}, headers=headers
    )
    assert made.status_code == 200, made.text
    fill = (
        "n = 0\nwhile True:\n    with open(f'f{n}', 'wb') as f:\n"
        "        f.write(b'x' * (4 << 20))\n    n += 1\n"
    )
    answer = await http.post(
        f"{base}/process",
        json={"assistant_id": made.json()["id"], "content": f"python {fill}", "stream": False},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    (item,) = [i for i in answer.json()["items"] if i["type"] == "code_interpreter_call"]
    assert item["limit"] == "disk", item
    assert "passed the container's 32 MiB" in item["error"]
    response, _ = await served.run(fill)
    (call,) = [i for i in response.output if i.type == "code_interpreter_call"]
    assert "limit" not in call.model_dump()


async def test_the_start_up_says_what_bounds_a_container_and_as_whom_its_code_runs(
    served: Served,
) -> None:
    from parley.config import Settings
    from parley.sandbox import cgroups
    from parley.sandbox.probe import memory_bound

    found, said = cgroups.support()
    line = next(
        (x for x in served.server.log().splitlines() if "containers are bounded by" in x), ""
    )
    assert memory_bound(Settings()) in line, line
    assert (f"a cgroup each, {said}" if found is not None else "the host's watch") in line
    assert "; their code runs on the host as " in line
