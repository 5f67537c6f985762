"""The Vector Stores API, in OpenAI's shapes: ``/v1/vector_stores``, their files, file
batches and search (``routes``); the request and answer objects, ``schemas``."""
