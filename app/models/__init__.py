"""SQLModel tables. Importing this package registers every table on SQLModel.metadata."""

from app.models.audit import AuditEntry, AuditHead, EventRecord
from app.models.cases import LifeCase, LifeCaseProcedure, LifeEventRules
from app.models.certificates import (
    CertificateIssue,
    CertificateRequest,
    DailyCounter,
    IssuedCopy,
    KioskSession,
)
from app.models.devices import PrintJob
from app.models.org import Device, Location, Municipality, Site
from app.models.registry import Household, Resident, SealRegistration, TaxRecord
from app.models.staff import GroupPermission, StaffGroup, StaffSession, StaffUser, UserGroup

__all__ = [
    "CertificateIssue",
    "CertificateRequest",
    "DailyCounter",
    "IssuedCopy",
    "KioskSession",
    "LifeCase",
    "LifeCaseProcedure",
    "LifeEventRules",
    "AuditEntry",
    "AuditHead",
    "Device",
    "EventRecord",
    "GroupPermission",
    "Household",
    "Location",
    "Municipality",
    "PrintJob",
    "Resident",
    "SealRegistration",
    "Site",
    "StaffGroup",
    "StaffSession",
    "StaffUser",
    "TaxRecord",
    "UserGroup",
]
