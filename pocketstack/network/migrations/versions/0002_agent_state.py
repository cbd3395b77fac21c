"""agent state: heartbeats, start time and reported configurations (agents.py)

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import pocketstack.common.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('network_agent', sa.Column('heartbeat_timestamp', pocketstack.common.db.UTCDateTime(), nullable=True))
    op.add_column('network_agent', sa.Column('started_at', pocketstack.common.db.UTCDateTime(), nullable=True))
    op.add_column('network_agent', sa.Column('configurations', pocketstack.common.db.JSONText(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('network_agent') as batch:
        batch.drop_column('configurations')
        batch.drop_column('started_at')
        batch.drop_column('heartbeat_timestamp')
