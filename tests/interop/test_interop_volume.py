"""Tempest's interop-required volume tests (../shared/interop/platform-required-volume.txt)."""

import pytest

pytestmark = pytest.mark.tempest


def test_volume_interop_list_all_pass(interop):
    interop("volume")
