"""The official ``openai`` SDK, unmodified, against a real ``parley serve``: the same
scenarios with the newest 3.x in the test process and the newest 2.x in a subprocess."""
