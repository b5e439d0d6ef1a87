"""The end-of-turn model (Smart Turn v3.2): at a caller's pause, is the turn complete? See ``scorer.py``."""

from services.gateway.end_of_turn.scorer import EndOfTurnScorer, EndOfTurnUnavailable

__all__ = ["EndOfTurnScorer", "EndOfTurnUnavailable"]
