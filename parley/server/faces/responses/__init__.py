"""The Responses and Conversations face (the Open Responses specification, OpenAI's
Responses API): a translator between that protocol and the engine. A response is a run; a
conversation, or a chain of ``previous_response_id``, is a thread; ``function_call`` and
``function_call_output`` items are the run's tool pause. Nothing here has a state machine
or storage of its own."""
