"""Reference vectors for ConR: a PyTorch transcription of the official regulariser
(BorealisAI/ConR, agedb-dir/loss.py `ConR`) in float64, value and autograd gradient on the
features, with the temperature as an argument (the official function overwrites it with 0.07,
our default) and two changes stated in each case: `official_denominator` false drops the
e^0 = 1 terms the official code adds for every non-positive pair, and an anchor without
positives contributes 0 instead of NaN.

    /tmp/tabvenv/bin/pip install torch==2.15.0
    /tmp/tabvenv/bin/python tests/reference/contrastive/generate_conr.py
"""

import json
from pathlib import Path

import torch


def conr(features, targets, preds, w, weights, t, e, official_denominator):
    q = torch.nn.functional.normalize(features, dim=1)
    k = q
    l_dist = (targets - targets.flatten()[None, :]).abs()
    p_dist = (preds - preds.flatten()[None, :]).abs()
    pos_i = l_dist.le(w)
    neg_i = (~l_dist.le(w)) * p_dist.le(w)
    pos_i.fill_diagonal_(False)
    prod = q @ k.T / t
    pos = prod * pos_i
    neg = prod * neg_i
    pushing_w = weights * torch.exp(l_dist * e)
    neg_exp_dot = (pushing_w * torch.exp(neg) * neg_i).sum(1)
    no_neg_flag = neg_i.sum(1).bool()
    denom = pos_i.sum(1)
    if official_denominator:
        pos_sum = torch.exp(pos).sum(1)
    else:
        pos_sum = (torch.exp(prod) * pos_i).sum(1)
    # A row without positives has an empty sum; 1 there keeps the (masked-out) logarithm and
    # its gradient finite instead of NaN.
    full = torch.where(denom > 0, pos_sum + neg_exp_dot, torch.ones_like(pos_sum))
    per = (-torch.log(torch.exp(pos) / full.unsqueeze(-1)) * pos_i).sum(1)
    per = torch.where(denom > 0, per / denom.clamp(min=1), torch.zeros_like(per))
    return (weights * (per * no_neg_flag).unsqueeze(-1)).mean()


def case(name, x, y, p, weights, official, w=1.0, t=0.07, e=0.01):
    x = x.clone().requires_grad_(True)
    loss = conr(x, y.view(-1, 1), p.view(-1, 1), w, weights.view(-1, 1), t, e, official)
    loss.backward()
    return {
        "name": name,
        "window": w,
        "temperature": t,
        "eta": e,
        "official_denominator": official,
        "features": x.tolist(),
        "labels": y.tolist(),
        "predictions": p.tolist(),
        "weights": weights.tolist(),
        "loss": loss.item(),
        "grad": x.grad.tolist(),
    }


def main():
    g = torch.Generator().manual_seed(2024)
    dt = torch.float64
    r = lambda *s: torch.randn(*s, generator=g, dtype=dt)
    y = torch.tensor([3.0, 3.5, 7.0, 7.0, 1.0, 4.2, 6.5, 3.1], dtype=dt)
    p = torch.tensor([3.2, 5.0, 6.1, 3.9, 1.8, 4.0, 3.0, 6.8], dtype=dt)
    wts = torch.tensor([1.0, 0.5, 2.0, 2.0, 3.0, 0.8, 1.2, 1.0], dtype=dt)
    cases = []
    for official in (False, True):
        cases.append(case(f"mixed_official{official}", r(8, 6), y, p, wts, official))
    # Anchor 4 (label 40) has no positive; it is a negative for those predicted near 40.
    y2 = torch.tensor([1.0, 1.5, 2.0, 10.0, 40.0, 10.5], dtype=dt)
    p2 = torch.tensor([1.2, 9.8, 2.4, 40.3, 10.1, 1.1], dtype=dt)
    cases.append(case("anchor_without_positive", r(6, 4), y2, p2, torch.ones(6, dtype=dt), False))
    cases.append(case("anchor_without_positive_official", r(6, 4), y2, p2, torch.ones(6, dtype=dt), True))
    cases.append(case("all_equal_labels", r(5, 3), torch.full((5,), 2.0, dtype=dt), r(5), torch.ones(5, dtype=dt), False))
    cases.append(case("single_sample", r(1, 3), torch.tensor([2.0], dtype=dt), torch.tensor([1.0], dtype=dt), torch.ones(1, dtype=dt), True))
    cases.append(case("wide_window_warm", r(7, 5), torch.arange(7, dtype=dt) * 0.7, torch.tensor([2.0, 0.5, 2.4, 1.0, 3.9, 2.2, 0.8], dtype=dt), torch.linspace(0.5, 2.0, 7, dtype=dt), False, w=1.5, t=0.5, e=0.3))
    (Path(__file__).parent / "conr.json").write_text(json.dumps({
        "description": "ConR value and feature gradient, PyTorch float64 transcription of the "
                       "official agedb-dir/loss.py ConR (temperature as given; see the generator "
                       "for the two stated changes).",
        "tolerance": {"rtol": 1e-9, "atol": 1e-12},
        "torch": torch.__version__,
        "cases": cases,
    }, indent=1))


if __name__ == "__main__":
    main()
