"""Certificate request states and the moves staff and printers may make between them."""

from __future__ import annotations

from enum import StrEnum


class RequestState(StrEnum):
    RECEIVED = "received"  # 受付: waiting to print automatically
    AWAITING_CONFIRMATION = "awaiting"  # 確認待ち: the location prints after a staff click
    PRINTED = "printed"  # 印刷済
    HANDED_OVER = "handed_over"  # 交付済
    CANCELLED = "cancelled"  # 取消

    @property
    def label_ja(self) -> str:
        return _LABELS[self]


_LABELS = {
    RequestState.RECEIVED: "受付",
    RequestState.AWAITING_CONFIRMATION: "確認待ち",
    RequestState.PRINTED: "印刷済",
    RequestState.HANDED_OVER: "交付済",
    RequestState.CANCELLED: "取消",
}

_MOVES: dict[RequestState, frozenset[RequestState]] = {
    RequestState.RECEIVED: frozenset({RequestState.PRINTED, RequestState.CANCELLED}),
    RequestState.AWAITING_CONFIRMATION: frozenset(
        {RequestState.RECEIVED, RequestState.PRINTED, RequestState.CANCELLED}
    ),
    RequestState.PRINTED: frozenset({RequestState.HANDED_OVER, RequestState.CANCELLED}),
    RequestState.HANDED_OVER: frozenset(),
    RequestState.CANCELLED: frozenset(),
}


def may_move(current: RequestState, to: RequestState) -> bool:
    return to in _MOVES[current]
