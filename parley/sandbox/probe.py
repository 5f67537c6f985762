"""Whether a sandbox can run on this machine, and which Python runs inside one."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parley.config import Settings

_answers: dict[str, str | None] = {}

#: The least sandbox: every namespace new, the system read-only, nothing else.
_PROBE = (
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--symlink",
    "usr/bin",
    "/bin",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--uid",
    "1000",
    "--gid",
    "1000",
    "/usr/bin/true",
)


def unavailable(bwrap: str | None = None) -> str | None:
    """Why no sandbox can run on this machine (no bwrap on PATH, user namespaces refused,
    ...), as one plain sentence for a 400 error and for ``parley serve``'s start-up line;
    None when it can. Runs ``bwrap --unshare-all ... true`` once and caches the answer (per
    process)."""
    key = bwrap or ""
    if key not in _answers:
        _answers[key] = _probe(bwrap)
    return _answers[key]


def sandbox_user(settings: Settings) -> tuple[int | None, str]:
    """The host uid a sandbox runs as, and why, for ``parley serve``'s start-up: a server
    run as root runs them as ``code_interpreter_uid`` (``nobody``'s by default) where
    bubblewrap works as that user, else as root, saying why; any other server as itself
    (None)."""
    if os.geteuid() != 0:
        return None, "the server's own user"
    uid = settings.code_interpreter_uid
    if uid is None:
        try:
            uid = pwd.getpwnam("nobody").pw_uid
        except KeyError:
            uid = 65534
    if uid == 0:
        return None, "root (PARLEY_CODE_INTERPRETER_UID=0)"
    bwrap = shutil.which("bwrap")
    # What a sandbox binds by path: the Python's folders, and the containers' folder.
    folders = [*python_roots(sandbox_python(settings)), settings.containers_directory()]
    why = _runs_as(bwrap, uid, tuple(folders)) if bwrap is not None else "no bwrap"
    if why is not None:
        return None, f"root, since uid {uid} cannot run a sandbox here ({why})"
    return uid, f"uid {uid}"


_users: dict[tuple[str, int, tuple[Path, ...]], str | None] = {}


def _runs_as(bwrap: str, uid: int, folders: tuple[Path, ...]) -> str | None:
    """Why bwrap cannot make a sandbox as ``uid`` that binds ``folders`` (None: it can);
    tried once a process. The containers' folder (the last) is made if missing, and made
    passable (mode 0711: its sandboxes' own folders may be reached by name, not listed)."""
    key = (bwrap, uid, folders)
    if key not in _users:
        binds: list[str] = []
        try:
            folders[-1].mkdir(parents=True, exist_ok=True, mode=0o711)
            folders[-1].chmod(folders[-1].stat().st_mode | 0o011)
            for folder in folders:
                binds += ["--ro-bind", str(folder), str(folder)]
            done = subprocess.run(
                [bwrap, *binds, *_PROBE],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=20,
                check=False,
                env={},
                user=uid,
                group=uid,
                extra_groups=[],
            )
        except (OSError, subprocess.SubprocessError) as exc:
            _users[key] = str(exc)
        else:
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()
            why = said[-1].removeprefix("bwrap: ") if said else "refused"
            _users[key] = None if done.returncode == 0 else why
    return _users[key]


def denies_userns(bwrap: str) -> bool:
    """Whether this bwrap can deny the sandbox's code user namespaces of its own
    (``--disable-userns``: bubblewrap 0.8 and newer, on a kernel that allows it). Tried
    once per process."""
    if bwrap not in _denies:
        try:
            tried = _run(bwrap, ["--unshare-user", "--disable-userns", *_PROBE])
        except (OSError, subprocess.TimeoutExpired):
            return False  # not kept: bwrap itself failed, which the sandbox's start says
        _denies[bwrap] = tried is None
    return _denies[bwrap]


_denies: dict[str, bool] = {}


def _run(bwrap: str, args: list[str]) -> subprocess.CompletedProcess[bytes] | None:
    """``bwrap args``'s failure (None when it ran to a 0 exit); OSError and TimeoutExpired
    raised."""
    done = subprocess.run(
        [bwrap, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=20,
        check=False,
        env={},
    )
    return None if done.returncode == 0 else done


def _probe(bwrap: str | None) -> str | None:
    found = bwrap or shutil.which("bwrap")
    if found is None:
        return "bubblewrap (bwrap) is not installed on the server, so no sandbox can run"
    try:
        done = _run(found, list(_PROBE))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap ({found}) could not be run: {exc}"
    if done is not None:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = f": {said[-1].removeprefix('bwrap: ')}" if said else ""
        return f"bubblewrap cannot make a sandbox on this server (user namespaces refused?){why}"
    return None


def code_interpreter_unavailable(settings: Settings) -> str | None:
    """Why this server cannot run the code interpreter (None: it can): the operator
    switched it off, or no sandbox can run here (``unavailable``)."""
    if not settings.code_interpreter_enabled:
        return "the server's operator switched the code interpreter off"
    why = unavailable()
    if why is None and settings.code_interpreter_cgroup == "require":
        from parley.sandbox import cgroups

        found, said = cgroups.support()
        if found is None:
            return f"the server requires a cgroup for each sandbox and can make none: {said}"
    return why


def memory_bound(settings: Settings) -> str:
    """What bounds a container's memory and processes as a whole on this server, as a
    sentence for ``parley serve``'s start-up and ``parley sandbox check``."""
    from parley.sandbox import cgroups

    if settings.code_interpreter_cgroup == "off":
        return (
            "the host's watch of their processes during each call "
            "(PARLEY_CODE_INTERPRETER_CGROUP=off)"
        )
    found, said = cgroups.support()
    if found is not None:
        return f"a cgroup each, {said}"
    return f"the host's watch of their processes during each call (no cgroup: {said})"


def bwrap_path() -> str:
    """The ``bwrap`` to run (the one on PATH); FileNotFoundError when there is none."""
    found = shutil.which("bwrap")
    if found is None:
        raise FileNotFoundError("bubblewrap (bwrap) is not installed")
    return found


def sandbox_python(settings: Settings) -> Path:
    """The Python run inside sandboxes: settings.code_interpreter_python, else
    data_dir()/"sandbox"/bin/python if it exists, else Path(sys.prefix)/"sandbox"/bin/python
    if it exists, else the server's own interpreter (sys.executable)."""
    from parley.config import data_dir

    if settings.code_interpreter_python is not None:
        return settings.code_interpreter_python
    for home in (data_dir(), Path(sys.prefix)):
        candidate = home / "sandbox" / "bin" / "python"
        if candidate.exists():
            return candidate
    return Path(sys.executable)


def python_roots(python: Path) -> list[Path]:
    """The folders a sandbox must see, read-only, for ``python`` to run: its environment
    (a venv's folder, found by its ``pyvenv.cfg``) and the base interpreter's prefix (from
    ``pyvenv.cfg``'s ``home``, or the interpreter's own), outside ``/usr``."""
    roots: list[Path] = []
    executable = python.absolute()
    env = executable.parent.parent
    cfg = env / "pyvenv.cfg"
    base = executable.resolve()
    if cfg.is_file():
        roots.append(env)
        for line in cfg.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                base = (Path(value.strip()) / "python3").resolve()
    roots.append(base.parent.parent)  # .../bin/python3.11 -> the prefix
    wanted: list[Path] = []
    for root in roots:
        if root == Path("/usr") or root.is_relative_to("/usr") or root == Path("/"):
            continue
        if not any(root.is_relative_to(kept) for kept in wanted):
            wanted = [kept for kept in wanted if not kept.is_relative_to(root)] + [root]
    return wanted
