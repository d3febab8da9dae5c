"""Label-preserving augmentation and padding/masking collate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spatialgen.data.augment import Augment, mirror_foa, rotate_foa_yaw, swap_binaural
from spatialgen.data.collate import collate_items
from spatialgen.spatial import doa

SR = 16000


def _foa_item(az_deg: float, el_deg: float, cam_deg: tuple[float, float]) -> dict:
    rng = np.random.default_rng(1)
    s = rng.standard_normal(SR // 2)
    a, e = math.radians(az_deg), math.radians(el_deg)
    x = np.stack([s, s * math.sin(a) * math.cos(e), s * math.sin(e), s * math.cos(a) * math.cos(e)])
    cam = torch.tensor([math.radians(v) for v in cam_deg], dtype=torch.float32)
    return {
        "clip_id": "c0",
        "audio": torch.from_numpy(x).float(),
        "sample_rate": SR,
        "audio_format": "foa",
        "camera_direction": cam,
        "camera_pose": torch.tensor([[cam[0], cam[1], 0.0]] * 4),
        "video": torch.randint(0, 255, (4, 3, 8, 10), dtype=torch.uint8),
    }


def _wrap_deg(x: float) -> float:
    return (x + 180.0) % 360.0 - 180.0


@pytest.mark.parametrize("angle_deg", [90.0, -37.5, 137.0, 180.0])
def test_rotation_keeps_scene_relative_to_camera(angle_deg: float) -> None:
    item = _foa_item(160.0, 20.0, (150.0, 10.0))
    out = rotate_foa_yaw(item, math.radians(angle_deg))
    az0, el0 = (math.degrees(float(v)) for v in doa.intensity_doa(item["audio"].double(), SR))
    az1, el1 = (math.degrees(float(v)) for v in doa.intensity_doa(out["audio"].double(), SR))
    cam0, cam1 = (math.degrees(float(d["camera_direction"][0])) for d in (item, out))
    assert _wrap_deg(az1 - az0) == pytest.approx(_wrap_deg(angle_deg), abs=0.2)  # the field really moved
    assert _wrap_deg((az1 - cam1) - (az0 - cam0)) == pytest.approx(0.0, abs=0.2)  # ... with its label
    assert el1 == pytest.approx(el0, abs=0.2) and -180 < cam1 <= 180
    assert out["camera_direction"][1] == item["camera_direction"][1]
    assert torch.allclose(out["camera_pose"][:, 0], item["camera_pose"][:, 0] + math.radians(angle_deg))
    assert torch.equal(out["video"], item["video"])  # the view is unchanged
    assert torch.equal(out["audio"][0], item["audio"][0])  # W is rotation invariant


def test_binaural_swap_mirrors_audio_and_video() -> None:
    ears = torch.stack([torch.ones(100), 0.25 * torch.ones(100)])
    item = {
        "clip_id": "b",
        "audio": ears,
        "audio_format": "binaural",
        "video": torch.arange(24, dtype=torch.uint8).reshape(1, 1, 4, 6).expand(2, 3, 4, 6).clone(),
        "camera_direction": torch.zeros(2),
        "camera_pose": torch.zeros(2, 3),
    }
    out = swap_binaural(item)
    assert torch.equal(out["audio"][0], ears[1]) and torch.equal(out["audio"][1], ears[0])
    assert torch.equal(out["video"][..., 0], item["video"][..., -1])
    back = swap_binaural(out)
    assert torch.equal(back["audio"], ears) and torch.equal(back["video"], item["video"])
    with pytest.raises(ValueError, match="binaural"):
        swap_binaural(_foa_item(0, 0, (0, 0)))
    with pytest.raises(ValueError, match="FOA"):
        rotate_foa_yaw(item, 1.0)


@pytest.mark.parametrize(("az", "el", "cam"), [(40.0, 10.0, (0.0, 0.0)), (-120.0, -25.0, (35.0, 5.0))])
def test_foa_mirror_moves_the_source_to_the_other_side(
    az: float, el: float, cam: tuple[float, float]
) -> None:
    """Mirror y -> -y: the DOA's azimuth changes sign, elevation stays, picture and camera label mirror too."""
    item = _foa_item(az, el, cam)
    out = mirror_foa(item)
    a, e = doa.intensity_doa(out["audio"].double(), SR)
    assert math.degrees(float(a)) == pytest.approx(-az, abs=0.5)
    assert math.degrees(float(e)) == pytest.approx(el, abs=0.5)
    for ch in (0, 2, 3):  # W, Z, X are even in y
        assert torch.equal(out["audio"][ch], item["audio"][ch])
    assert torch.equal(out["video"], item["video"].flip(-1))
    assert float(out["camera_direction"][0]) == pytest.approx(-math.radians(cam[0]))
    assert float(out["camera_direction"][1]) == pytest.approx(math.radians(cam[1]))
    assert torch.equal(out["camera_pose"][:, 0], -item["camera_pose"][:, 0])
    back = mirror_foa(out)
    assert torch.equal(back["audio"], item["audio"]) and torch.equal(back["video"], item["video"])
    # Augment(swap_prob) mirrors FOA items (it swaps the ears of binaural ones)
    assert Augment(swap_prob=1.0)(item)["audio"][1].equal(-item["audio"][1])
    with pytest.raises(ValueError, match="FOA"):
        mirror_foa({**item, "audio_format": "binaural"})
    with pytest.raises(ValueError, match="cached"):
        mirror_foa({**item, "codes": torch.zeros(1)})


def test_augment_probabilities_and_determinism() -> None:
    item = _foa_item(10.0, 0.0, (0.0, 0.0))
    never, always = Augment(rotate_prob=0.0), Augment(rotate_prob=1.0, rotate_angles_deg=[90.0])
    assert never(item) is item
    out = always(item)
    assert math.degrees(float(out["camera_direction"][0])) == pytest.approx(90.0, abs=1e-4)
    rand = Augment(rotate_prob=1.0, seed=3)
    assert torch.equal(rand(item, 1)["audio"], rand(item, 1)["audio"])
    with pytest.raises(ValueError, match="rotate_prob"):
        Augment(rotate_prob=1.5)


def test_collate_pads_and_masks() -> None:
    a = {
        "clip_id": "a",
        "audio": torch.ones(2, 5),
        "video": torch.ones(3, 3, 4, 4, dtype=torch.uint8),
        "camera_pose": torch.ones(3, 3),
        "camera_direction": torch.zeros(2),
        "sample_rate": SR,
        "codes": torch.ones(2, 9, 4, dtype=torch.long),
        "features": {"tiny": torch.ones(3, 8)},
        "features_fps": {"tiny": 8.0},
        "start": 0.5,
        "labels": ["x"],
    }
    b = {
        **a,
        "clip_id": "b",
        "audio": 2 * torch.ones(2, 7),
        "video": torch.ones(2, 3, 4, 4, dtype=torch.uint8),
        "camera_pose": torch.ones(2, 3),
        "codes": torch.ones(2, 9, 6, dtype=torch.long),
        "features": {"tiny": torch.ones(5, 8)},
        "labels": [],
    }
    batch = collate_items([a, b])
    assert batch["audio"].shape == (2, 2, 7) and batch["audio"][0, :, 5:].abs().sum() == 0
    assert batch["audio_mask"].tolist() == [[True] * 5 + [False] * 2, [True] * 7]
    assert batch["video"].shape == (2, 3, 3, 4, 4) and batch["video_mask"].tolist() == [
        [True] * 3,
        [True, True, False],
    ]
    assert batch["camera_pose"].shape == (2, 3, 3)
    assert batch["codes"].shape == (2, 2, 9, 6) and (batch["codes"][0, ..., 4:] == -1).all()
    assert batch["codes_mask"].sum(1).tolist() == [4, 6]
    assert batch["features"]["tiny"].shape == (2, 5, 8) and batch["features_mask"]["tiny"].sum(
        1
    ).tolist() == [3, 5]
    assert batch["sample_rate"] == SR and batch["clip_id"] == ["a", "b"] and batch["labels"] == [["x"], []]
    assert batch["start"].tolist() == [0.5, 0.5] and batch["features_fps"] == {"tiny": 8.0}
    with pytest.raises(ValueError, match="sample_rate"):
        collate_items([a, {**b, "sample_rate": 8000}])
    with pytest.raises(ValueError, match="different keys"):
        collate_items([a, {k: v for k, v in b.items() if k != "codes"}])
