"""domain configuration and OS-OAUTH1 consumers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 12:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import pocketstack.common.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('identity_domain_config',
    sa.Column('domain_id', sa.String(length=64), nullable=False),
    sa.Column('group_name', sa.String(length=255), nullable=False),
    sa.Column('option_name', sa.String(length=255), nullable=False),
    sa.Column('value', pocketstack.common.db.JSONText(), nullable=True),
    sa.Column('sensitive', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['domain_id'], ['identity_domain.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('domain_id', 'group_name', 'option_name')
    )
    op.create_table('identity_oauth_consumer',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('encrypted_secret', sa.Text(), nullable=False),
    sa.Column('extra', pocketstack.common.db.JSONText(), nullable=False),
    sa.Column('created_at', pocketstack.common.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('identity_oauth_consumer')
    op.drop_table('identity_domain_config')
