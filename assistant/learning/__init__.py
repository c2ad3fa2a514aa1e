"""Learning from traces: feedback signals and defect labels per turn (signals), explicit feedback (feedback).

Everything here reads the trace store only; the pipeline never has to know about it.
"""

from assistant.learning.feedback import classify_reply, is_correction, record_feedback, should_ask
from assistant.learning.signals import LABELER_VERSION, SignalConfig, label_store, label_turn, session_signals

__all__ = [
    "LABELER_VERSION",
    "SignalConfig",
    "classify_reply",
    "is_correction",
    "label_store",
    "label_turn",
    "record_feedback",
    "session_signals",
    "should_ask",
]
