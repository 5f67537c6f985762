"""The run engine: state machine, turn loop and run ownership."""

from parley.engine.engine import Engine, TurnResult

__all__ = ["Engine", "TurnResult"]
