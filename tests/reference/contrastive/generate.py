"""Reference vectors for Rank-N-Contrast: a PyTorch transcription of the official loss
(kaiwenzha/Rank-N-Contrast, loss.py: L1 label distance, negative L2 feature distance over τ,
two views concatenated) in float64, value and autograd gradient on the features.

    /tmp/tabvenv/bin/pip install torch==2.15.0
    /tmp/tabvenv/bin/python tests/reference/contrastive/generate.py

Writes rnc.json beside this script; the torch version is recorded in the file.
"""

import json
from pathlib import Path

import torch


def rnc(features, labels, t):
    # features: [bs, 2, d]; labels: [bs, l]
    f = torch.cat([features[:, 0], features[:, 1]], dim=0)
    y = labels.repeat(2, 1)
    label_diffs = (y[:, None, :] - y[None, :, :]).abs().sum(dim=-1)
    logits = -(f[:, None, :] - f[None, :, :]).norm(2, dim=-1) / t
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    exp_logits = logits.exp()
    n = logits.shape[0]
    off = ~torch.eye(n, dtype=torch.bool)
    logits = logits.masked_select(off).view(n, n - 1)
    exp_logits = exp_logits.masked_select(off).view(n, n - 1)
    label_diffs = label_diffs.masked_select(off).view(n, n - 1)
    loss = torch.zeros((), dtype=f.dtype)
    for k in range(n - 1):
        pos_logits = logits[:, k]
        pos_diffs = label_diffs[:, k]
        neg_mask = (label_diffs >= pos_diffs.view(-1, 1)).to(f.dtype)
        loss = loss - ((pos_logits - torch.log((neg_mask * exp_logits).sum(dim=-1))) / (n * (n - 1))).sum()
    return loss


def case(name, views, labels, t, normalize=False):
    x = views.clone().requires_grad_(True)
    z = torch.nn.functional.normalize(x, dim=-1) if normalize else x
    loss = rnc(z, labels, t)
    loss.backward()
    return {
        "name": name,
        "temperature": t,
        "normalize": normalize,
        "view1": x[:, 0].tolist(),
        "view2": x[:, 1].tolist(),
        "labels": labels.tolist(),
        "loss": loss.item(),
        "grad_view1": x.grad[:, 0].tolist(),
        "grad_view2": x.grad[:, 1].tolist(),
    }


def main():
    g = torch.Generator().manual_seed(2023)
    dt = torch.float64
    r = lambda *s: torch.randn(*s, generator=g, dtype=dt)
    cases = [
        case("ties", r(6, 2, 5), torch.tensor([[3.0], [1.0], [3.0], [7.0], [1.0], [2.0]], dtype=dt), 2.0),
        case("all_equal_labels", r(4, 2, 3), torch.full((4, 1), 5.0, dtype=dt), 2.0),
        case("single_sample", r(1, 2, 4), torch.tensor([[1.5]], dtype=dt), 2.0),
        case("two_dim_labels", r(5, 2, 6) * 3.0, torch.tensor([[1.0, 0.0], [0.5, 2.0], [3.0, 1.0], [1.0, 0.0], [2.0, 2.5]], dtype=dt), 0.5),
        case("normalized", r(7, 2, 8), torch.arange(7, dtype=dt).view(7, 1) * 1.5, 0.1, normalize=True),
    ]
    (Path(__file__).parent / "rnc.json").write_text(json.dumps({
        "description": "Rank-N-Contrast loss and its gradient on both views, PyTorch float64 "
                       "transcription of the official loss.py (features are the two views' rows "
                       "concatenated; labels repeated).",
        "tolerance": {"rtol": 1e-9, "atol": 1e-12},
        "torch": torch.__version__,
        "cases": cases,
    }, indent=1))


if __name__ == "__main__":
    main()
