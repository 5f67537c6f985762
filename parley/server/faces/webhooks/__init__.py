"""Parley's own webhook endpoints API, ``/v1/webhooks`` (``routes``): OpenAI has none."""
