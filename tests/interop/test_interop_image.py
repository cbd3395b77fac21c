"""Tempest's interop-required image tests (../shared/interop/platform-required-image.txt)."""

import pytest

pytestmark = pytest.mark.tempest


def test_image_interop_list_all_pass(interop):
    interop("image")
