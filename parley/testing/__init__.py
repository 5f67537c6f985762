"""Test helpers that ship with Parley.

``parley.testing.fake_upstream`` is a fake OpenAI-compatible Chat Completions server
(``FakeUpstream``, ``expected_text``, ...). It is not imported here, so that
``python -m parley.testing.fake_upstream`` runs it cleanly.
"""
