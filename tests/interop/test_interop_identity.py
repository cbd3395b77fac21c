"""Tempest's interop-required identity tests (../shared/interop/platform-required-identity.txt)."""

import pytest

pytestmark = pytest.mark.tempest


def test_identity_interop_list_all_pass(interop):
    interop("identity")
