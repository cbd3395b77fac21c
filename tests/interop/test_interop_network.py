"""Tempest's interop-required network tests (../shared/interop/platform-required-network.txt)."""

import pytest

pytestmark = pytest.mark.tempest


def test_network_interop_list_all_pass(interop):
    interop("network")
