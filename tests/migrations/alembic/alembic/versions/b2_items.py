"""items"""

from alembic import op

revision: str = "b2c3d4e5f6a1"
down_revision: str | None = "a1b2c3d4e5f6"


def upgrade() -> None:
    op.execute("CREATE TABLE items (id serial PRIMARY KEY,"
               " org_id integer NOT NULL REFERENCES organizations (id), quantity integer NOT NULL DEFAULT 0)")


def downgrade() -> None:
    op.execute("DROP TABLE items")
