"""The sandbox runtime of the ``code_interpreter`` tool: one long-lived Python ("kernel") per
container, inside a bubblewrap sandbox, keeping its variables between calls like a notebook.

- ``limits``: ``Limits``, what one container may use (memory, CPU, processes, disk, time).
- ``probe``: whether a sandbox can run on this machine, and which Python runs inside.
- ``runtime``: ``Kernel`` (start, run a cell, close) and ``Outcome``.
- ``bounds``: the looks at a sandbox's files, processes and memory, and its pause between
  calls; ``watch``: the thread that makes those looks during a call.
- ``pidfiles``: a sandbox's pid file, and ``sweep_orphans`` at start-up.
- ``files``: the host's side of a container's ``/mnt/data``, never following a symlink;
  ``walk``: its walks of the tree, with a bounded number of descriptors.
- ``cgroups``: a pids cgroup per sandbox when the server runs as root (root is exempt from
  the RLIMIT_NPROC the kernel sets on itself).
- ``kernel``: the stdlib-only script the sandbox's Python runs (not imported by the server).
- ``setup``: ``parley sandbox setup``, the sandbox's own environment with numpy, pandas and
  matplotlib.

Nothing here imports the rest of Parley except ``parley.config``.
"""
