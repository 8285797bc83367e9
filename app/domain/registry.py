"""Resident-registry vocabulary shared by the models, the demo generator and the services."""

from __future__ import annotations

from enum import StrEnum


class Sex(StrEnum):
    MALE = "1"
    FEMALE = "2"


class ResidentStatus(StrEnum):
    RESIDENT = "resident"  # 住民
    MOVING_OUT = "moving_out"  # 転出予定 (転出届 filed, not yet left)
    MOVED_OUT = "moved_out"  # 転出
    DECEASED = "deceased"  # 死亡
    REMOVED = "removed"  # 職権消除 and other removals


class SiteKind(StrEnum):
    MAIN_OFFICE = "main"  # 本庁
    BRANCH = "branch"  # 支所
    OTHER = "other"


class DeviceKind(StrEnum):
    KIOSK = "kiosk"
    COUNTER = "counter"
    BACK_OFFICE = "back_office"


class Suppression(StrEnum):
    """抑止 flags: reasons a record must not be issued without staff review."""

    SUPPORT_MEASURE = "support_measure"  # 支援措置 (DV, stalking, abuse victims)
    GAIJI_PENDING = "gaiji_pending"  # a character in the name is not yet registered (外字)
    OTHER = "other"


# 続柄 for 住民票, as the 住民記録システム標準仕様書 allows them (the common values). The standard
# writes chains (子の子, 父の母) rather than 孫 or 祖母.
RELATIONSHIPS: tuple[str, ...] = (
    "世帯主",
    "妻",
    "夫",
    "子",
    "父",
    "母",
    "妻の父",
    "妻の母",
    "夫の父",
    "夫の母",
    "父の父",
    "父の母",
    "母の父",
    "母の母",
    "子の子",
    "兄",
    "姉",
    "弟",
    "妹",
    "子の妻",
    "子の夫",
    "妻（未届）",
    "夫（未届）",
    "同居人",
    "縁故者",
)
