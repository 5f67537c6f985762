"""The Files and Uploads APIs, in OpenAI's shapes: ``/v1/files`` (``routes``) and
``/v1/uploads`` (``uploads``); what they read from a request, ``forms``."""
