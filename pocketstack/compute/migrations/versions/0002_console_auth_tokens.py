"""console auth tokens (the noVNC console proxy, compute/console.py)

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('compute_console_auth_token',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('console_type', sa.String(length=255), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('internal_access_path', sa.String(length=255), nullable=True),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('access_url_base', sa.String(length=255), nullable=True),
    sa.Column('expires', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index('ix_compute_console_auth_token_instance_uuid', 'compute_console_auth_token',
                    ['instance_uuid'], unique=False)
    op.create_index('ix_compute_console_auth_token_expires', 'compute_console_auth_token', ['expires'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_compute_console_auth_token_expires', table_name='compute_console_auth_token')
    op.drop_index('ix_compute_console_auth_token_instance_uuid', table_name='compute_console_auth_token')
    op.drop_table('compute_console_auth_token')
