"""The run engine: state machine, turn loop and run ownership. ``Engine`` and the
``TurnHandle`` it gives back are the interface every face uses (docs/architecture.md)."""

from parley.engine.engine import Engine
from parley.engine.handle import TurnHandle, TurnOutcome

__all__ = ["Engine", "TurnHandle", "TurnOutcome"]
