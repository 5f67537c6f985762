"""What one container's sandbox may use, from the settings and the container's memory size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parley.config import Settings

#: OpenAI's container sizes, in bytes of memory.
MEMORY_LIMITS: dict[str, int] = {"1g": 1 << 30, "4g": 4 << 30, "16g": 16 << 30, "64g": 64 << 30}
#: Files a sandbox's processes may hold open (RLIMIT_NOFILE): a quarter of a Linux shell's
#: usual 1024, room for Python, its libraries and the code's own files, while a loop that
#: opens and never closes stops soon. Not a setting: what a container runs needs no more.
OPEN_FILES = 256


@dataclass(frozen=True, slots=True)
class Limits:
    #: RLIMIT_AS of the kernel process: its address space, in bytes.
    memory_bytes: int
    #: RLIMIT_CPU of the kernel process, over its whole life.
    cpu_seconds: int
    #: Processes (threads included) the sandbox may run at once.
    processes: int
    #: RLIMIT_NOFILE.
    open_files: int
    #: RLIMIT_FSIZE: the largest file the code may write.
    file_bytes: int
    #: Bytes ``/mnt/data`` may hold in all (watched by the host during a call).
    disk_bytes: int
    #: Seconds of wall clock one call may run before it is interrupted.
    call_timeout: float
    #: Bytes of printed output kept per call.
    output_bytes: int
    #: Files (and folders) ``/mnt/data`` may hold in all.
    disk_files: int = 10_000

    @classmethod
    def of(cls, settings: Settings, memory_limit: str | None = None) -> Limits:
        """The limits the settings give, with ``memory_limit`` ("1g", "4g", "16g", "64g";
        default: the settings' ``code_interpreter_memory_limit``). ValueError for another size."""
        size = memory_limit or settings.code_interpreter_memory_limit
        if size not in MEMORY_LIMITS:
            raise ValueError(f"memory_limit must be one of {', '.join(MEMORY_LIMITS)}")
        return cls(
            memory_bytes=MEMORY_LIMITS[size],
            cpu_seconds=settings.code_interpreter_cpu_seconds,
            processes=settings.code_interpreter_max_processes,
            open_files=OPEN_FILES,
            file_bytes=settings.code_interpreter_max_file_bytes,
            disk_bytes=settings.code_interpreter_disk_bytes,
            call_timeout=settings.code_interpreter_call_timeout,
            output_bytes=settings.code_interpreter_max_output,
        )


def size_text(n: int) -> str:
    """``1 GiB``, ``20 MiB``, ``512 KiB``: a byte count as people say it."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"
