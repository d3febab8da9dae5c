"""Code patterns: exact inverses, the official ViSAGe layout (``preprocess_ambi.py``), head schedules."""

import pytest
import torch

from spatialgen.models.visage.patterns import PATTERNS, create_pattern

PAD = 1024


def distinct_codes(B, C, Q, F):
    """codes[b, c, q, t] = unique id (< PAD for small sizes)."""
    return torch.arange(B * C * Q * F).reshape(B, C, Q, F) % PAD


@pytest.mark.parametrize("name", sorted(PATTERNS))
@pytest.mark.parametrize(("C", "Q"), [(1, 1), (1, 9), (4, 9), (2, 3)])
def test_build_revert_identity_for_many_lengths(name, C, Q):
    pattern = create_pattern(name, C, Q)
    for F in [1, 2, 3, 5, 8, 13, 31]:
        codes = torch.randint(0, PAD, (2, C, Q, F))
        seq, mask = pattern.build(codes, PAD)
        assert seq.shape == (2, pattern.sequence_length(F), C * Q)
        assert mask.shape == seq.shape[1:]
        # Every token appears exactly once; PAD fills every other slot.
        assert int(mask.sum()) == C * Q * F
        assert (seq[:, ~mask] == PAD).all()
        assert torch.equal(pattern.revert(seq), codes)
        assert pattern.num_frames(seq.shape[1]) == F


def test_visage_layout_matches_the_reference_table_for_three_frames():
    pattern = create_pattern("visage", 4, 9)
    codes = distinct_codes(1, 4, 9, 3)
    seq, _ = pattern.build(codes, PAD)

    def tok(k, t):
        return int(codes[0, k // 9, k % 9, t])

    w_r_and_s_p = [*range(1, 9), 9, 18, 27]
    s_r = [*range(10, 18), *range(19, 27), *range(28, 36)]
    # Hand-written from the official ``prepare_dac``: row -> (streams, frame) groups.
    table = {
        0: [([0], 0)],
        1: [(w_r_and_s_p, 0)],
        2: [([0], 1), (s_r, 0)],
        3: [(w_r_and_s_p, 1)],
        4: [([0], 2), (s_r, 1)],
        5: [(w_r_and_s_p, 2)],
        6: [(s_r, 2)],
    }
    expected = torch.full((7, 36), PAD)
    for row, groups in table.items():
        for streams, t in groups:
            for k in streams:
                expected[row, k] = tok(k, t)
    assert torch.equal(seq[0], expected)
    # The official generation head lists (first, odd, even, last) follow from the pattern.
    sched = [s.tolist() for s in pattern.schedule(3)]
    assert sched == [[0], w_r_and_s_p, [0, *s_r], w_r_and_s_p, [0, *s_r], w_r_and_s_p, s_r]


def test_visage_full_length_shapes():
    pattern = create_pattern("visage", 4, 9)
    seq, mask = pattern.build(torch.zeros(1, 4, 9, 430, dtype=torch.long), PAD)
    assert seq.shape == (1, 861, 36)  # labels [861, 36]; decoder inputs = rows[:-1] -> 860 (+BOS = 861)
    assert (mask.sum(0) == 430).all()  # every stream has exactly T labels


def test_mono_layout_is_the_stage1_layout():
    pattern = create_pattern("visage", 1, 9)
    codes = distinct_codes(1, 1, 9, 4)
    seq, _ = pattern.build(codes, PAD)
    assert seq.shape[1] == 8  # 2T rows
    for t in range(4):
        assert seq[0, 2 * t, 0] == codes[0, 0, 0, t] and (seq[0, 2 * t, 1:] == PAD).all()
        assert torch.equal(seq[0, 2 * t + 1, 1:], codes[0, 0, 1:, t]) and seq[0, 2 * t + 1, 0] == PAD
    assert [s.tolist() for s in pattern.schedule(2)] == [[0], list(range(1, 9))] * 2


def test_delay_and_flat_layouts():
    codes = distinct_codes(1, 2, 3, 4)
    delay = create_pattern("delay", 2, 3)
    seq, _ = delay.build(codes, PAD)
    assert seq.shape[1] == 4 + 3 - 1
    for c in range(2):
        for q in range(3):
            assert torch.equal(seq[0, q : q + 4, 3 * c + q], codes[0, c, q])
    flat = create_pattern("flat", 2, 3)
    seq, _ = flat.build(codes, PAD)
    assert seq.shape[1] == 6 * 4
    assert torch.equal(seq[0].diagonal(0, 0, 1)[:6], codes[0].reshape(6, 4)[:, 0])
    assert all(len(s) == 1 for s in flat.schedule(4))  # one token per step


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_schedule_is_the_mask(name):
    pattern = create_pattern(name, 4, 2)
    mask = pattern.mask(5)
    for p, heads in enumerate(pattern.schedule(5)):
        assert heads.tolist() == mask[p].nonzero().flatten().tolist()
    # Causality of the layout: within a stream, frames come in order.
    pos = pattern.positions(5)
    assert (pos.diff(dim=1) > 0).all()


def test_errors():
    pattern = create_pattern("visage", 4, 9)
    with pytest.raises(ValueError, match="codes must be"):
        pattern.build(torch.zeros(1, 2, 9, 3, dtype=torch.long), PAD)
    with pytest.raises(ValueError, match="no whole number of frames"):
        pattern.revert(torch.zeros(1, 8, 36, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown code pattern"):
        create_pattern("zigzag", 4, 9)
