"""The system calls the sandbox's code may not make: a seccomp filter bubblewrap loads
(``--seccomp FD``) just before it starts the kernel, inherited by every process the code
makes.

The sandbox's user has no capability, so most of these fail anyway; the filter refuses
them before the kernel's code for them runs at all, which is where a kernel bug reachable
from an unprivileged user lives (io_uring, userfaultfd, eBPF, perf events and the key
rings have each had several). The list follows what container runtimes deny by default:
loading kernel modules or a new kernel, mounting and namespaces, the clocks, swap and
reboot, the key rings, ptrace and another process's memory, file handles, fanotify, eBPF,
perf events, userfaultfd and io_uring. ``clone3`` answers ENOSYS (its flags are behind a
pointer, out of the filter's sight), so the C library falls back to ``clone``; every other
call answers EPERM, as an unprivileged call would. System calls of another ABI than the
machine's own (32-bit x86, x32) are refused whole.

The filter is a classic BPF program (``struct sock_filter`` entries), built here for
x86-64 and AArch64; on another machine ``program()`` is None and the sandbox runs without
one (``parley serve`` says so at start-up).
"""

from __future__ import annotations

import errno
import platform
import struct

#: Denied system calls, by name: (x86-64 number, AArch64 number).
DENIED: dict[str, tuple[int, int]] = {
    "acct": (163, 89),
    "add_key": (248, 217),
    "bpf": (321, 280),
    "chroot": (161, 51),
    "clock_settime": (227, 112),
    "delete_module": (176, 106),
    "fanotify_init": (300, 262),
    "finit_module": (313, 273),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fsopen": (430, 430),
    "fspick": (433, 433),
    "init_module": (175, 105),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "io_uring_setup": (425, 425),
    "kexec_file_load": (320, 294),
    "kexec_load": (246, 104),
    "keyctl": (250, 219),
    "lookup_dcookie": (212, 18),
    "mount": (165, 40),
    "mount_setattr": (442, 442),
    "move_mount": (429, 429),
    "move_pages": (279, 239),
    "name_to_handle_at": (303, 264),
    "open_by_handle_at": (304, 265),
    "open_tree": (428, 428),
    "perf_event_open": (298, 241),
    "pivot_root": (155, 41),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "ptrace": (101, 117),
    "quotactl": (179, 60),
    "quotactl_fd": (443, 443),
    "reboot": (169, 142),
    "request_key": (249, 218),
    "setdomainname": (171, 162),
    "sethostname": (170, 161),
    "setns": (308, 268),
    "settimeofday": (164, 170),
    "swapoff": (168, 225),
    "swapon": (167, 224),
    "syslog": (103, 116),
    "umount2": (166, 39),
    "unshare": (272, 97),
    "userfaultfd": (323, 282),
}
#: Denied with ENOSYS (the C library then uses an older call), by name.
MISSING: dict[str, tuple[int, int]] = {"clone3": (435, 435)}
#: x86-64's own port I/O calls (AArch64 has none).
X86_ONLY: dict[str, int] = {"iopl": 172, "ioperm": 173}

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
#: x86-64's x32 ABI: system call numbers with this bit set.
_X32 = 0x40000000

_LD_W_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_RET = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000


def program(machine: str | None = None) -> bytes | None:
    """The filter for ``machine`` (``platform.machine()`` by default), as bwrap reads it:
    ``struct sock_filter`` entries, native byte order; None for a machine it has no
    numbers for."""
    machine = machine or platform.machine()
    if machine not in _AUDIT_ARCH:
        return None
    x86 = machine == "x86_64"
    column = 0 if x86 else 1
    denied = sorted({numbers[column] for numbers in DENIED.values()})
    if x86:
        denied = sorted({*denied, *X86_ONLY.values()})
    missing = sorted({numbers[column] for numbers in MISSING.values()})
    # Laid out as: the ABI check, the calls, ALLOW, then the two refusals at the end.
    calls = len(denied) + len(missing)
    head: list[tuple[int, int, int, int]] = [(_LD_W_ABS, 0, 0, 4)]  # seccomp_data.arch
    after_arch = 2 + (1 if x86 else 0) + calls  # from the jump to the ENOSYS return
    head.append((_JEQ, 0, after_arch + 1, _AUDIT_ARCH[machine]))
    head.append((_LD_W_ABS, 0, 0, 0))  # seccomp_data.nr
    body: list[tuple[int, int, int, int]] = []
    if x86:
        body.append((_JGE, calls + 2, 0, _X32))  # to ENOSYS
    for i, number in enumerate(denied):
        body.append((_JEQ, calls - i, 0, number))  # to EPERM
    for i, number in enumerate(missing):
        body.append((_JEQ, len(missing) - i + 1, 0, number))  # to ENOSYS
    tail = [
        (_RET, 0, 0, _ALLOW),
        (_RET, 0, 0, _ERRNO | errno.EPERM),
        (_RET, 0, 0, _ERRNO | errno.ENOSYS),
    ]
    return b"".join(struct.pack("=HBBI", *entry) for entry in [*head, *body, *tail])
