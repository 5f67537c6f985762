"""The Chat Completions API (``POST /v1/chat/completions``): a stateless gateway to every
provider Parley speaks to. Nothing is stored but the tokens used, per API key.

``requests`` reads a request into the ``ModelRequest`` the provider's adapter takes, and
refuses what the chosen provider cannot do (naming the field); ``chunks`` turns the model's
events into OpenAI's ``chat.completion.chunk`` objects, or one ``chat.completion``.

``embeddings`` is the Embeddings API (``POST /v1/embeddings``), the same kind of stateless
gateway over the providers that embed.
"""
