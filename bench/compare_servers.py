"""The other servers of the head-to-head (``bench/compare.py``): the bare relay
(``bench/relay.py``), LiteLLM's proxy, installed on first use into its own virtual
environment (``bench/.venvs/litellm``, git-ignored), and Parley with the upstream HTTP
transport of another git revision (``--transport-at``); and what ``/proc`` says about a
server with its child processes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from procs import BENCH, ROOT, Cores, Program, cpu_clock, memory_mib

#: The LiteLLM the bench installs. The issue measured 1.106; 1.106.3 and later need a
#: ``certifi`` newer than the package index here has, so the newest that installs.
LITELLM_VERSION = "1.106.2"
LITELLM_VENV = BENCH / ".venvs" / "litellm"
#: The key clients give LiteLLM (its ``master_key``; no database, so nothing else).
LITELLM_KEY = "sk-bench-litellm"


# ------------------------------------------------------------------------------ /proc


def process_tree(pid: int) -> list[int]:
    """The process and its descendants alive now."""
    pids, i = [pid], 0
    while i < len(pids):
        tasks = Path(f"/proc/{pids[i]}/task")
        i += 1
        try:
            for task in tasks.iterdir():
                pids += (int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return pids


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live children."""
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):  # ended between the listing and the read
            total += cpu_clock(p)
    return total


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its live children, in MiB."""
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError, KeyError):
            total += memory_mib(p)["VmRSS"]
    return total


# ------------------------------------------------------------------------ processes


def relay(cores: Cores, upstream_url: str, workdir: Path) -> Program:
    command = [sys.executable, str(BENCH / "relay.py"), "--upstream", f"{upstream_url}/v1"]
    return Program("the bare relay", command, "/healthz", cores, workdir / "relay.log")


#: The modules of Parley's upstream HTTP transport (under ``parley/providers/``), the ones
#: ``parley_at`` takes from another revision (``upstream_http.py``: the hand-written client,
#: up to 66f7d50).
TRANSPORT_FILES = (
    "transport.py",
    "http_response.py",
    "upstream_errors.py",
    "http_provider.py",
    "upstream_http.py",
)
#: ``python -c`` this ``DIR serve ...``: ``parley`` with the modules of ``parley.providers``
#: found in ``DIR`` first.
_OVERLAID = (
    "import sys, parley.providers as p; p.__path__.insert(0, sys.argv.pop(1)); "
    "from parley.cli.main import main; sys.exit(main())"
)


def parley_at(
    name: str, revision: str, cores: Cores, env: dict[str, str], workdir: Path
) -> Program:
    """``parley serve`` of this tree with the upstream HTTP transport (``TRANSPORT_FILES``)
    of git ``revision`` instead; ``env`` as the bench's own Parley has it (the same
    database and providers). Raises ``RuntimeError`` if the revision has no transport."""
    overlay = workdir / f"transport-{name}"
    overlay.mkdir()
    for file in TRANSPORT_FILES:
        shown = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{revision}:parley/providers/{file}"],
            capture_output=True,
            check=False,
        )
        if shown.returncode == 0:
            (overlay / file).write_bytes(shown.stdout)
    if not (overlay / "transport.py").exists():
        raise RuntimeError(f"git revision {revision!r} has no parley/providers/transport.py")
    command = [sys.executable, "-c", _OVERLAID, str(overlay), "serve"]
    return Program(
        f"Parley ({name})", command, "/healthz", cores, workdir / f"parley-{name}.log", env
    )


def parley_on(database_url: str, cores: Cores, env: dict[str, str], workdir: Path) -> Program:
    """``parley serve`` of this tree on another database (``database_url``), with the bench's
    providers; ``env`` as the bench's own Parley has it."""
    command = [sys.executable, "-m", "parley.cli.main", "serve"]
    env = {**env, "PARLEY_DATABASE_URL": database_url}
    return Program(
        "Parley (PostgreSQL)", command, "/healthz", cores, workdir / "parley-pg.log", env
    )


def litellm(cores: Cores, upstream_url: str, models: list[str], workdir: Path) -> Program:
    """LiteLLM's proxy with each of ``models`` routed to the fake upstream under the same
    name (``openai/<model>``), a master key and no database."""
    config = {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": f"{upstream_url}/v1",
                    "api_key": "sk-fake",
                },
            }
            for model in models
        ],
        "general_settings": {"master_key": LITELLM_KEY},
    }
    path = workdir / "litellm.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.pop("DATABASE_URL", None)
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR", NO_DOCS="True")
    command = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(path), "--host", "127.0.0.1"]
    return Program("LiteLLM", command, "/health/liveliness", cores, workdir / "litellm.log", env)


def ensure_litellm(version: str = LITELLM_VERSION) -> str | None:
    """Install ``litellm[proxy]==version`` into ``bench/.venvs/litellm`` unless it is there;
    answers ``None`` when it is ready, or why it is not (the install failed: no network to
    the package index, a version it does not have)."""
    python = LITELLM_VENV / "bin" / "python"
    if _installed_version(python) == version:
        return None
    print(f"installing litellm[proxy]=={version} into {LITELLM_VENV} ...", flush=True)
    log = LITELLM_VENV.parent / "litellm-install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    steps = [
        [sys.executable, "-m", "venv", str(LITELLM_VENV)],
        [*pip, "--retries", "1", "--timeout", "20", f"litellm[proxy]=={version}"],
    ]
    with log.open("w") as out:
        for step in steps:
            try:
                done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"{' '.join(step[:3])}: {type(exc).__name__}"
            if done.returncode != 0:
                errors = [line for line in log.read_text().splitlines() if "ERROR" in line]
                last = errors[-1][:200] if errors else "no error line"
                return f"pip install failed: {last} (the whole output: {log})"
    if _installed_version(python) != version:
        return f"litellm {version} is not importable after the install (see {log})"
    return None


def _installed_version(python: Path) -> str | None:
    if not python.exists():
        return None
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None
