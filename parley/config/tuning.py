"""``Tuning``: the server's internal intervals, constants rather than settings.

Each value is what the server is built around; none is an operator's choice, so none is a
``PARLEY_*`` setting (docs/configuration.md lists the variables that once set them, now
ignored). A server reaches them as ``settings.tuning.<name>``.

The test suite and the benchmarks alone change them, to run in seconds what takes minutes:
in process with ``Settings(tuning=Tuning(sweep_seconds=0.2))``, and for a server they start
with one variable, ``PARLEY_TUNING``, holding the values that differ as a JSON object
(``{"sweep_seconds": 0.2}``). An unknown name in it stops the server, so that a test never
runs on a value it did not get.
"""

from __future__ import annotations

from pydantic import ConfigDict, NonNegativeFloat, PositiveFloat
from pydantic.dataclasses import dataclass

#: The variable a test or a benchmark sets the intervals of a server it starts with.
TUNING_VARIABLE = "PARLEY_TUNING"


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Tuning:
    """The server's internal intervals, in seconds."""

    #: Most time a streamed event waits for a checkpoint to save it to the database: what a
    #: server that dies can lose of a turn's text, against one write a quarter second for
    #: all the replica's running turns (``engine.checkpoints``).
    checkpoint_seconds: PositiveFloat = 0.25
    #: Least time between two looks for expired and orphaned runs (a read; a write only when
    #: one is due). The sweep looks when a lease, expiry or hold falls due, so this only
    #: bounds how late after it: half a second, of the 4 s a dead run may take to close.
    sweep_seconds: PositiveFloat = 0.5
    #: Time between a server's rounds of pruning old event logs and delivered webhooks:
    #: retention is counted in hours, so five minutes late is nothing, and each round is a
    #: few short transactions.
    event_prune_seconds: PositiveFloat = 300.0
    #: Time between writes of the tokens counted per API key (counted in memory meanwhile,
    #: written at shutdown too): one write a second for all the keys of a busy replica, and
    #: a replica that dies loses a second of counts at most. 0: after each call.
    usage_flush_seconds: NonNegativeFloat = 1.0
    #: Time a key's daily budget, and the tokens every replica wrote for it, are remembered
    #: between reads: a turn reads no row of them, and a budget is exceeded by at most what
    #: five seconds of turns spend (docs/usage.md). 0: read for every turn.
    budget_cache_seconds: NonNegativeFloat = 5.0
    #: Time a replica remembers an API key it checked: a request reads no row of it, and a
    #: key revoked or a user disabled on another replica is refused within ten seconds (on
    #: the replica that revokes, at once). 0: checked for every request.
    auth_cache_seconds: NonNegativeFloat = 10.0
    #: Time between sweeps of expired files and uploads: an expiry is counted in days, and
    #: ``parley db prune`` runs one at once.
    files_sweep_seconds: PositiveFloat = 300.0
    #: Wait before a webhook delivery's first retry; each later one waits twice as long (an
    #: hour at most), so the 24 hours of retries make about 30 attempts.
    webhook_backoff_seconds: PositiveFloat = 5.0
    #: Longest wait between a replica's looks for due deliveries. Those its own runs write
    #: go as soon as they commit and retries when due: this only bounds how late one left
    #: by a replica that died is sent.
    webhook_poll_seconds: PositiveFloat = 5.0
