"""Webhooks: run-end events POSTed, signed, to the endpoints users register (docs/webhooks.md).

The events are written to an outbox in the transaction that ends each run
(``store.webhooks``); ``delivery.Deliveries``, started with the engine's upkeep on every
replica, sends them and retries them.
"""
