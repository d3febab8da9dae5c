"""Flow matching and samplers: analytic Gaussian flow, convergence order, Gauss-Seidel ears, batched CFG,
seeded determinism, and a loss that decreases on a toy batch."""

import math

import pytest
import torch

from spatialgen.models.visaudio import (
    ViSAudioNet,
    cfg_velocity,
    flow_matching_loss,
    generate,
    interpolate,
    logit_normal_t,
    sample_ode,
    velocity_target,
    visaudio_config,
)

from .conftest import make_features

MU, S = 1.5, 0.3  # data N(MU, S^2) per coordinate, noise N(0, 1)


def gaussian_velocity(x, t):
    """Marginal velocity of the linear path between N(0, 1) and N(MU, S^2) (independent coupling):
    x_t ~ N(t MU, sig_t^2), sig_t^2 = (1-t)^2 + t^2 S^2, v = MU + sig_t'/sig_t (x - t MU)."""
    tb = t.reshape(-1, *([1] * (x.ndim - 1)))
    var = (1 - tb) ** 2 + tb**2 * S**2
    return MU + (tb * S**2 - (1 - tb)) / var * (x - tb * MU)


def exact_endpoint(x0):
    return MU + S * x0  # the flow maps x0 to sig_1 * x0 + MU


@pytest.fixture
def x0():
    return torch.randn(3, 2, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_path_and_target():
    x0, x1 = torch.zeros(2, 2, 1, 1, dtype=torch.float64), torch.ones(2, 2, 1, 1, dtype=torch.float64)
    t = torch.tensor([0.25, 1.0])
    torch.testing.assert_close(interpolate(x0, x1, t)[:, 0, 0, 0], t.double())
    torch.testing.assert_close(velocity_target(x0, x1), x1)
    ts = logit_normal_t(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    logits = torch.log(ts / (1 - ts))
    assert abs(float(logits.mean())) < 0.03 and abs(float(logits.std()) - 1) < 0.03


@pytest.mark.parametrize(
    ("method", "order", "steps"), [("euler", 1, 2000), ("heun", 2, 400), ("midpoint", 2, 100)]
)
def test_sampler_integrates_gaussian_flow(x0, method, order, steps):
    """Error halves (Euler) or quarters (Heun) per step doubling. Midpoint is second order in general; on
    this linear flow its leading error term vanishes and it converges at third order (measured 2.99)."""
    target = exact_endpoint(x0)
    err = [
        float((sample_ode(gaussian_velocity, x0, steps=n, method=method) - target).abs().max())
        for n in (40, 80)
    ]
    observed = math.log2(err[0] / err[1])
    if method == "midpoint":
        assert 2.8 < observed < 3.2, err
    else:
        assert abs(observed - order) < 0.15, (method, err)
    final = float((sample_ode(gaussian_velocity, x0, steps=steps, method=method) - target).abs().max())
    assert final < (2e-3 if order == 1 else 2e-5)


def test_sequential_is_gauss_seidel(x0):
    # decoupled ears: sequential and joint updates coincide
    torch.testing.assert_close(
        sample_ode(gaussian_velocity, x0, steps=7, sequential=True),
        sample_ode(gaussian_velocity, x0, steps=7),
    )

    # coupled linear system: dl/dt = a r, dr/dt = b l; the right ear must see the updated left one
    a, b = 0.7, -1.3

    def coupled(x, t):
        return torch.stack((a * x[:, 1], b * x[:, 0]), dim=1)

    n = 5
    dt = 1 / n
    l, r = x0[:, 0].clone(), x0[:, 1].clone()
    for _ in range(n):
        l = l + dt * a * r
        r = r + dt * b * l
    out = sample_ode(coupled, x0, steps=n, sequential=True)
    torch.testing.assert_close(out, torch.stack((l, r), dim=1), rtol=0, atol=1e-14)
    assert (out - sample_ode(coupled, x0, steps=n)).abs().max() > 1e-3


def _conditions(net, batch=2):
    clip, sync, pe = make_features(net.config, batch)
    cond = net.prepare_conditions(clip, sync, pe)
    uncond = net.prepare_conditions(clip, sync, pe, drop=torch.ones(batch, dtype=torch.bool))
    return cond, uncond


def test_batched_cfg_equals_separate_passes(tiny_net):
    cond, uncond = _conditions(tiny_net)
    x = torch.randn(2, 2, tiny_net.config.latent_dim, cond.latent_len, dtype=torch.float64)
    t = torch.tensor([0.2, 0.9], dtype=torch.float64)
    w = 4.5
    batched = cfg_velocity(tiny_net, cond, uncond, w)(x, t)
    separate = w * tiny_net(x, t, cond) + (1 - w) * tiny_net(x, t, uncond)
    torch.testing.assert_close(batched, separate, rtol=0, atol=1e-10)
    assert (tiny_net(x, t, cond) - tiny_net(x, t, uncond)).abs().max() > 1e-3  # the null condition matters


@pytest.mark.parametrize("w", [0.0, 0.5, 1.0])
def test_guidance_off_below_one_as_mmaudio(tiny_net, w):
    """MMAudio's ode_wrapper returns the conditional flow for cfg_strength < 1 (no blend to the null)."""
    cond, uncond = _conditions(tiny_net)
    x = torch.randn(2, 2, tiny_net.config.latent_dim, cond.latent_len, dtype=torch.float64)
    t = torch.tensor([0.2, 0.9], dtype=torch.float64)
    torch.testing.assert_close(
        cfg_velocity(tiny_net, cond, uncond, w)(x, t), tiny_net(x, t, cond), rtol=0, atol=0
    )
    a = generate(tiny_net, cond, uncond=uncond, cfg_scale=w, steps=2, seed=1)
    torch.testing.assert_close(a, generate(tiny_net, cond, uncond=None, steps=2, seed=1), rtol=0, atol=0)


def test_prompt_text_is_dropped_in_the_null_pass(tiny_net):
    """CFG drops text as MMAudio does: the null conditions use the empty-prompt features."""
    cfg = tiny_net.config
    clip, sync, pe = make_features(cfg, 2)
    text = torch.randn(2, cfg.text_len, cfg.text_dim, dtype=torch.float64)
    drop = torch.ones(2, dtype=torch.bool)
    with torch.no_grad():
        tiny_net.conditioning.empty_text.normal_()
    null = tiny_net.prepare_conditions(clip, sync, pe, text=text, drop=drop, drop_text=drop)
    no_prompt = tiny_net.prepare_conditions(clip, sync, pe, drop=drop)
    for a, b in zip(null.tensors(), no_prompt.tensors(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    prompt = tiny_net.prepare_conditions(clip, sync, pe, text=text)
    assert (prompt.text - tiny_net.prepare_conditions(clip, sync, pe).text).abs().max() > 1e-3
    # per-sample text dropout replaces only the dropped sample's prompt
    half = tiny_net.prepare_conditions(clip, sync, pe, text=text, drop_text=torch.tensor([True, False]))
    torch.testing.assert_close(
        half.text[0], no_prompt_text := tiny_net.prepare_conditions(clip, sync, pe).text[0]
    )
    torch.testing.assert_close(half.text[1], prompt.text[1])
    assert no_prompt_text.shape == (cfg.text_len, cfg.hidden_dim)


def test_generate_is_seeded_and_matches_manual_euler(tiny_net):
    cond, uncond = _conditions(tiny_net)
    a = generate(tiny_net, cond, uncond=uncond, steps=2, seed=11, denormalize=False)
    b = generate(tiny_net, cond, uncond=uncond, steps=2, seed=11, denormalize=False)
    c = generate(tiny_net, cond, uncond=uncond, steps=2, seed=12, denormalize=False)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    x = torch.randn(a.shape, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    for k in range(2):
        t = torch.full((2,), k / 2, dtype=torch.float64)
        x = x + 0.5 * (4.5 * tiny_net(x, t, cond) - 3.5 * tiny_net(x, t, uncond))
    torch.testing.assert_close(a, x, rtol=0, atol=1e-10)
    with torch.no_grad():
        tiny_net.normalizer.mean.fill_(2.0)
        tiny_net.normalizer.std.fill_(3.0)
    torch.testing.assert_close(generate(tiny_net, cond, uncond=uncond, steps=2, seed=11), 3.0 * a + 2.0)


def test_loss_decreases_on_toy_batch():
    torch.manual_seed(0)
    cfg = visaudio_config("tiny", duration=1.0)
    net = ViSAudioNet(cfg)
    gen = torch.Generator().manual_seed(0)
    clip, sync, pe = make_features(cfg, 2, dtype=torch.float32)
    x1 = torch.randn(2, 2, cfg.latent_dim, cfg.latent_len(), generator=gen)
    x1[:, 1] *= 0.5  # a level difference between the ears for the net to learn
    noise = torch.randn(x1.shape, generator=gen)
    t = logit_normal_t(2, generator=gen)
    opt = torch.optim.AdamW(net.parameters(), lr=5e-3)
    losses = []
    for _ in range(12):
        loss, per_ear = flow_matching_loss(net, x1, net.prepare_conditions(clip, sync, pe), t=t, noise=noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert per_ear.shape == (2,)
    assert losses[-1] < 0.6 * losses[0], losses


def test_sampler_errors(x0):
    with pytest.raises(ValueError, match="method"):
        sample_ode(gaussian_velocity, x0, method="rk4")
    with pytest.raises(ValueError, match="steps"):
        sample_ode(gaussian_velocity, x0, steps=0)


def test_inter_ear_difference_term_matches_its_formula():
    """``diff_weight`` adds w · mean(((v_L − v_R) − (u_L − u_R))²) to the per-ear loss, u = x1 − noise."""

    class Fixed(torch.nn.Module):  # a "network" whose velocity is known: v = 0.5 · x_t
        def forward(self, x, t, cond):
            return 0.5 * x

    gen = torch.Generator().manual_seed(3)
    x1 = torch.randn(3, 2, 5, 7, generator=gen, dtype=torch.float64)
    noise = torch.randn(x1.shape, generator=gen, dtype=torch.float64)
    t = torch.rand(3, generator=gen, dtype=torch.float64)
    base, per_ear = flow_matching_loss(Fixed(), x1, None, t=t, noise=noise)
    with_diff, per_ear2 = flow_matching_loss(Fixed(), x1, None, t=t, noise=noise, diff_weight=2.5)
    xt = (1 - t)[:, None, None, None] * noise + t[:, None, None, None] * x1
    v, u = 0.5 * xt, x1 - noise
    expected = 2.5 * ((v[:, 0] - v[:, 1]) - (u[:, 0] - u[:, 1])).pow(2).mean()
    assert torch.equal(per_ear, per_ear2)
    assert float(with_diff - base) == pytest.approx(float(expected), rel=1e-12)
    assert float(base) == pytest.approx(float((v - u).pow(2).mean(dim=(0, 2, 3)).sum()), rel=1e-12)
