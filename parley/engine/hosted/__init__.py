"""Tools the server runs itself (hosted tools), inside a turn, on every provider.

A run's ``tools`` may hold, beside the client's functions, entries of a hosted kind:
``mcp`` (``hosted.mcp``), ``file_search`` (``hosted.file_search``), ``code_interpreter``
(``hosted.code_interpreter``) and ``web_search`` (``hosted.web_search``), each one module
behind one interface (``hosted.kind``: a ``Kind`` opens a turn's entries as a ``Toolset``
of ``Tool`` s), found by entry type in the registry (``hosted.kinds``). At the turn's start
``HostedTools.open`` makes them ready as a ``Toolbox``: an MCP server's tools are listed (or
taken from the list the thread already holds), a file search becomes one function, and the
model sees each as a function in its provider's own terms (``Toolbox.functions``). When the model
calls one, the turn runs it (``Toolbox.run``), stores the call and its result, a typed record
(``hosted.records``), as items of the run's output (``messages.item``), tells the live
followers (``HostedToolEvent``), hands the result to the model and goes on
(``engine.run_loop``). A call that needs the client's
approval pauses the run as ``action_required`` with an ``approval`` action; the next turn
runs it once approved (``engine.hosted.approvals``).

Every step is bounded: time, output size and calls per turn.
"""

from parley.engine.hosted.toolbox import HostedTools, Toolbox, hosted_entries

__all__ = ["HostedTools", "Toolbox", "hosted_entries"]
