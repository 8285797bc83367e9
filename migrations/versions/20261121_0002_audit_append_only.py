"""The database refuses UPDATE and DELETE on audit entries.

The hash chain makes tampering detectable; these triggers make the ordinary ways of tampering fail
outright. Entries may be deleted only when older than two years (archiving), never sooner.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE = [
    """CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry
       BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only'); END""",
    """CREATE TRIGGER audit_entry_no_early_delete BEFORE DELETE ON audit_entry
       WHEN old.at > datetime('now', '-730 days')
       BEGIN SELECT RAISE(ABORT, 'audit entries are kept at least 2 years'); END""",
]

_POSTGRES = [
    """CREATE FUNCTION audit_entry_guard() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP = 'UPDATE' THEN
           RAISE EXCEPTION 'audit_entry is append-only';
         END IF;
         IF OLD.at > now() - interval '730 days' THEN
           RAISE EXCEPTION 'audit entries are kept at least 2 years';
         END IF;
         RETURN OLD;
       END $$""",
    """CREATE TRIGGER audit_entry_guard BEFORE UPDATE OR DELETE ON audit_entry
       FOR EACH ROW EXECUTE FUNCTION audit_entry_guard()""",
]


def upgrade() -> None:
    statements = _SQLITE if op.get_bind().dialect.name == "sqlite" else _POSTGRES
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER audit_entry_no_update")
        op.execute("DROP TRIGGER audit_entry_no_early_delete")
    else:
        op.execute("DROP TRIGGER audit_entry_guard ON audit_entry")
        op.execute("DROP FUNCTION audit_entry_guard()")
