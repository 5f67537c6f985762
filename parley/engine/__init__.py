"""The run engine: state machine, turn loop and run ownership."""

from parley.engine.engine import Engine, TurnOutcome

__all__ = ["Engine", "TurnOutcome"]
