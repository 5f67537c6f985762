"""Running a client script of this folder with the bun of ``tests/compliance``: skipped (and
failed under CI) when bun or the script's package is not installed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tests.compliance.test_openresponses import BUN
from tests.unavailable import json_report, unavailable

HERE = Path(__file__).parent


def script_report(script: str, package: str, what: str, *args: str) -> dict[str, Any]:
    """The JSON object ``bun run SCRIPT ARGS`` prints; ``package`` is the folder under
    ``node_modules`` the script needs, ``what`` names the client in messages."""
    hint = "`make test` installs them (npm ci --prefix tests/js_clients)"
    if not BUN.exists():
        npm = "" if shutil.which("npm") else " (and npm is not on PATH)"
        unavailable(f"no bun at {BUN}{npm}; {hint}")
    if not (HERE / "node_modules" / package).exists():
        unavailable(f"{what} is not installed in {HERE / 'node_modules'}; {hint}")
    env = {**os.environ, "DO_NOT_TRACK": "1", "BUN_RUNTIME_TRANSPILER_CACHE_PATH": "0"}
    command = [str(BUN), "--no-install", "run", str(HERE / script), *args]
    return json_report(command, what=what, timeout=60, cwd=HERE, env=env)
