"""organizations"""

from alembic import op

revision = "a1b2c3d4e5f6"
down_revision = None


def upgrade() -> None:
    op.execute("CREATE TABLE organizations (id serial PRIMARY KEY, name text NOT NULL)")


def downgrade() -> None:
    op.execute("DROP TABLE organizations")
