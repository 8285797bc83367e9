"""Device-bridge vocabulary: print-job states and their allowed transitions, printer kinds."""

from __future__ import annotations

from enum import StrEnum


class PrinterKind(StrEnum):
    RECEIPT = "receipt"  # ESC/POS receipt printer at a kiosk or counter
    OFFICE = "office"  # PDF to a CUPS queue in the back office


class PrintJobState(StrEnum):
    QUEUED = "queued"  # written, not yet sent to the bridge
    DELIVERED = "delivered"  # the bridge has it
    PRINTING = "printing"  # the bridge handed it to the printer
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({PrintJobState.DONE, PrintJobState.FAILED, PrintJobState.CANCELLED})

# What a bridge may report next, from each state. Reports may repeat (acks are idempotent) and may
# skip ahead (a fast printer goes from delivered to done), but never go back.
_ORDER = {
    PrintJobState.QUEUED: 0,
    PrintJobState.DELIVERED: 1,
    PrintJobState.PRINTING: 2,
    PrintJobState.DONE: 3,
    PrintJobState.FAILED: 3,
    PrintJobState.CANCELLED: 3,
}


def may_move(current: PrintJobState, reported: PrintJobState) -> bool:
    """Whether a bridge's report moves a job forward (False means: ignore it, already there or past)."""
    if current in FINAL_STATES:
        return False
    return _ORDER[reported] > _ORDER[current]
