"""The generic registry every named lookup in spatialgen uses."""

import pytest

from spatialgen.errors import SpatialgenError
from spatialgen.registry import Registry, UnknownNameError


def make() -> Registry[int]:
    reg: Registry[int] = Registry("widget")
    reg.register("clip_vit_b32", 1)
    reg.register("clip_vit_h14_384", 2)

    @reg.register("tiny")
    def _tiny() -> int:
        return 3

    return reg


def test_register_get_list() -> None:
    reg = make()
    assert reg.get("clip_vit_b32") == 1
    assert reg.get("tiny")() == 3
    assert reg.list() == ["clip_vit_b32", "clip_vit_h14_384", "tiny"]
    assert reg.list("clip_*") == ["clip_vit_b32", "clip_vit_h14_384"]
    assert "tiny" in reg and len(reg) == 3


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownNameError) as info:
        make().get("clip_vit_b23")
    message = str(info.value)
    assert "unknown widget 'clip_vit_b23'" in message and "Did you mean 'clip_vit_b32'" in message
    assert isinstance(info.value, SpatialgenError) and isinstance(info.value, KeyError)


def test_duplicate_registration_is_refused() -> None:
    reg = make()
    with pytest.raises(ValueError, match="already registered"):
        reg.register("tiny", 5)
    reg.register("tiny", 5, overwrite=True)
    assert reg.get("tiny") == 5
