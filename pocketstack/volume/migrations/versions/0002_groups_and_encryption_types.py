"""generic volume groups (group types and specs, groups, group snapshots), encryption types,
per-project default volume types

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 04:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import pocketstack.common.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('volume_group_type',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=True),
    sa.Column('is_public', sa.Boolean(), nullable=False),
    sa.Column('created_at', pocketstack.common.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('volume_group_type_spec',
    sa.Column('group_type_id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['group_type_id'], ['volume_group_type.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_type_id', 'key')
    )
    op.create_table('volume_group',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('description', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('availability_zone', sa.String(length=255), nullable=False),
    sa.Column('group_type_id', sa.String(length=36), nullable=False),
    sa.Column('group_snapshot_id', sa.String(length=36), nullable=True),
    sa.Column('source_group_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', pocketstack.common.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', pocketstack.common.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_volume_group_project_id'), 'volume_group', ['project_id'], unique=False)
    op.create_index(op.f('ix_volume_group_created_at'), 'volume_group', ['created_at'], unique=False)
    op.create_table('volume_group_volume_type',
    sa.Column('group_id', sa.String(length=36), nullable=False),
    sa.Column('volume_type_id', sa.String(length=36), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['volume_group.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'volume_type_id')
    )
    op.create_table('volume_group_snapshot',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('group_id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('description', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('group_type_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', pocketstack.common.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', pocketstack.common.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_volume_group_snapshot_group_id'), 'volume_group_snapshot', ['group_id'], unique=False)
    op.create_index(op.f('ix_volume_group_snapshot_project_id'), 'volume_group_snapshot', ['project_id'],
                    unique=False)
    op.create_index(op.f('ix_volume_group_snapshot_created_at'), 'volume_group_snapshot', ['created_at'],
                    unique=False)
    op.create_table('volume_type_encryption',
    sa.Column('volume_type_id', sa.String(length=36), nullable=False),
    sa.Column('encryption_id', sa.String(length=36), nullable=False),
    sa.Column('provider', sa.String(length=255), nullable=False),
    sa.Column('cipher', sa.String(length=255), nullable=True),
    sa.Column('key_size', sa.Integer(), nullable=True),
    sa.Column('control_location', sa.String(length=32), nullable=False),
    sa.Column('created_at', pocketstack.common.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', pocketstack.common.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['volume_type_id'], ['volume_type.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('volume_type_id'),
    sa.UniqueConstraint('encryption_id')
    )
    op.create_table('volume_project_default_type',
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('volume_type_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['volume_type_id'], ['volume_type.id'], ),
    sa.PrimaryKeyConstraint('project_id')
    )
    with op.batch_alter_table('volume_snapshot') as batch:
        batch.add_column(sa.Column('group_snapshot_id', sa.String(length=36), nullable=True))
        batch.create_index(batch.f('ix_volume_snapshot_group_snapshot_id'), ['group_snapshot_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('volume_snapshot') as batch:
        batch.drop_index(batch.f('ix_volume_snapshot_group_snapshot_id'))
        batch.drop_column('group_snapshot_id')
    op.drop_table('volume_project_default_type')
    op.drop_table('volume_type_encryption')
    op.drop_table('volume_group_snapshot')
    op.drop_table('volume_group_volume_type')
    op.drop_table('volume_group')
    op.drop_table('volume_group_type_spec')
    op.drop_table('volume_group_type')
