"""The Assistants API (v2) face: OpenAI's shapes of assistants, threads, messages, runs and
run steps (``objects``), its run requests (``requests``) and its event stream
(``stream``), over the native resources and the one engine."""
