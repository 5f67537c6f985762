"""The benchmark's fake OpenAI-compatible upstream: ``parley.testing.fake_upstream``, run as
a program (real HTTP on loopback; ``N`` chunks with a fixed gap; text, reasoning and
tool-call modes chosen by the request's ``model``, e.g. ``text:22:5``)::

    .venv/bin/python bench/fake_upstream.py --port 0 --chunks 22 --gap-ms 5

It prints ``listening on http://127.0.0.1:PORT`` once it accepts connections.
"""

from __future__ import annotations

from parley.testing.fake_upstream import main

if __name__ == "__main__":
    main()
