"""Parley's own API: runs and their events, the turn endpoints of the seeds' two flows
(``completions``, ``process``, ``submit_tool_output``), actions, users and API keys, and
usage. Its resources answer in the Assistants shapes (``kit.resources``)."""
