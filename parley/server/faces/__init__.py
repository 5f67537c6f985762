"""The server's API faces, one folder each, over one protocol kit and the one engine.

    native         Parley's own API: runs, turns (flows A and B), actions, users, usage
    assistants     Assistants v2: assistants, threads, messages, thread runs, run steps
    responses      Responses and Conversations (the Open Responses specification)
    chat           Chat Completions and models: a stateless gateway
    files          Files and Uploads: the files the other faces read and write
    vector_stores  Vector Stores: the stores, their files and file batches, their search
    containers     Containers: the code interpreter's containers and their files
    webhooks       Parley's own webhook endpoints (OpenAI has no such API)
    kit            what every face shares: SSE and the stream pump, request readers, the
                   options check, pages, the resource shapes of the native resources

A face holds its routes, its request reading, its translation to and from the engine and
its stream translator. No face imports another; the kit imports no face
(``tests/test_layers.py``).
"""
