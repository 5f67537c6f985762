"""The Containers API, in OpenAI's shapes: ``/v1/containers`` and their files (``routes``);
the request and answer objects, ``schemas``; the queries of one transaction each, ``reads``."""
