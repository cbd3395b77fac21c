"""Tempest's interop-required object-storage tests (../shared/interop/platform-required-object-storage.txt)."""

import pytest

pytestmark = pytest.mark.tempest


def test_object_storage_interop_list_all_pass(interop):
    interop("object-storage")
