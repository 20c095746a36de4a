"""Reference vectors for the uncertainty heads, PyTorch float64 transcriptions of the official
code: UVOTE's Laplace NLL (SherryJYC/UVOTE, agedb-dir/loss.py `weighted_l1nll_loss`, log scale
clamped to [-5, 5]) and its multi-head loss with the progressive factor (train_gradual.py,
`--dynamic_loss`); VIR's conjugate-prior NIG head and loss (Wang-ML-Lab/variational-imbalanced-
regression, loss.py `cdm_loss`, evidential_deep_learning.py `NIG_NLL`, `NIG_Reg`,
`ConjugatePrior`) and its probabilistic re-weighting module (prm.py `PRM`, utils.py
`calibrate_mean_var_bayes`, called in dirkit's order: update, then smooth the updated
statistics, then calibrate), plus torch's lgamma and digamma. Values and autograd gradients.

    /tmp/tabvenv/bin/pip install torch==2.15.0 numpy==2.3.5 scipy
    /tmp/tabvenv/bin/python tests/reference/uncertainty/generate.py

Writes uncertainty.json beside this script; the torch and scipy versions are recorded in it.
"""

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

dt = torch.float64


def laplace_nll(mu, log_scale, y, w):
    s = torch.clamp(log_scale, min=-5, max=5)
    # The official adds 1e-10 to the scale; dirkit does not (relative effect < 1e-8 at s = -5).
    b = s.exp()
    nll = -torch.distributions.Laplace(loc=mu, scale=b).log_prob(y)
    if w is not None:
        nll = nll * w
    return nll.mean()


def laplace_case(name, mu, s, y, w):
    mu = mu.clone().requires_grad_(True)
    s = s.clone().requires_grad_(True)
    loss = laplace_nll(mu, s, y, w)
    loss.backward()
    return {"name": name, "mean": mu.tolist(), "log_scale": s.tolist(), "target": y.tolist(),
            "weights": None if w is None else w.tolist(), "loss": loss.item(),
            "grad_mean": mu.grad.tolist(), "grad_log_scale": s.grad.tolist()}


def uvote_case(g):
    n, m, epoch, epochs = 6, 3, 3, 10
    mu = torch.randn(n, m, generator=g, dtype=dt) * 3 + 20
    s = torch.randn(n, m, generator=g, dtype=dt)
    y = torch.tensor([18.0, 22.0, 21.0, 35.0, 19.5, 60.0], dtype=dt)
    density = torch.tensor([0.08, 0.07, 0.09, 0.01, 0.08, 0.002], dtype=dt)
    rs = torch.linspace(0, 1, m, dtype=dt)
    weights = []
    for r in rs:
        w = density.pow(-r)
        weights.append(w * len(w) / w.sum())
    wmat = torch.stack(weights, dim=1)
    mu_v = mu.clone().requires_grad_(True)
    s_v = s.clone().requires_grad_(True)
    alpha = 1 - (epoch / epochs) ** 2
    loss = None
    for h in range(m):
        term = laplace_nll(mu_v[:, h], s_v[:, h], y, wmat[:, h])
        loss = term if loss is None else loss + (1 - alpha) * term
    loss.backward()
    pick = torch.argmin(torch.clamp(s, -5, 5), dim=1)
    return {"means": mu.tolist(), "log_scales": s.tolist(), "target": y.tolist(),
            "density": density.tolist(), "weights": wmat.tolist(), "epoch": epoch,
            "epochs": epochs, "loss": loss.item(), "grad_means": mu_v.grad.tolist(),
            "grad_log_scales": s_v.grad.tolist(), "head": pick.tolist(),
            "prediction": mu.gather(1, pick[:, None]).squeeze(1).tolist(),
            "sigma": (math.sqrt(2) * torch.clamp(s, -5, 5).gather(1, pick[:, None]).squeeze(1).exp()).tolist()}


def nig_nll(y, gamma, v, alpha, beta):
    two_b_lambda = 2 * beta * (1 + v)
    return (0.5 * torch.log(math.pi / v) - alpha * torch.log(two_b_lambda)
            + (alpha + 0.5) * torch.log(v * (y - gamma) ** 2 + two_b_lambda)
            + torch.lgamma(alpha) - torch.lgamma(alpha + 0.5))


def vir_case(name, raw, y, w, reg, prior_nu=0.0, prior_alpha=0.3):
    raw = raw.clone().requires_grad_(True)
    softplus = lambda x: F.softplus(x, beta=0.1)
    x_bar, n, omega = torch.tensor_split(raw, 3, dim=1)
    n = softplus(n) + 2
    omega = softplus(omega)
    if w is not None:
        n = n * w[:, None]
    gamma, v, alpha, beta = x_bar, prior_nu + n, prior_alpha + n / 2.0, omega
    yy = y[:, None]
    reg_terms = F.l1_loss(gamma, yy, reduction="none") * (2 * v + alpha)
    loss = (nig_nll(yy, gamma, v, alpha, beta) + reg * reg_terms).mean()
    loss.backward()
    return {"name": name, "raw": raw.tolist(), "target": y.tolist(),
            "weights": None if w is None else w.tolist(), "reg": reg, "loss": loss.item(),
            "grad_raw": raw.grad.tolist(),
            "gamma": gamma.squeeze(1).tolist(), "nu": v.squeeze(1).tolist(),
            "alpha": alpha.squeeze(1).tolist(), "beta": beta.squeeze(1).tolist()}


def prm_case(g):
    """Two epochs of PRM statistics over bins 3..11 (labels 3 and 11 present, so the official
    pooling of out-of-range labels applies), then a calibrated batch."""
    d, bucket_start, bucket_num, ks, sigma, momentum = 3, 3, 12, 5, 2.0, 0.9
    nb = bucket_num - bucket_start
    half = (ks - 1) // 2
    base = torch.zeros(ks, dtype=dt)
    base[half] = 1.0
    # scipy's gaussian_filter1d(base, 2) on 5 taps (reflect mode) = our folded gaussian; the
    # window is normalised to sum 1 (`_get_kernel_window`).
    import numpy as np
    from scipy.ndimage import gaussian_filter1d
    window = gaussian_filter1d(base.numpy(), sigma=sigma)
    window = torch.tensor(window / window.sum(), dtype=dt)
    running_mean = torch.cat((torch.zeros(nb, d, dtype=dt), torch.ones(nb, d, dtype=dt)), 1)
    running_var = torch.ones(nb, 2 * d, dtype=dt)
    epochs = []

    def update(mu, var, labels, factor_first):
        nonlocal running_mean, running_var
        for label in torch.unique(labels):
            if label > bucket_num - 1 or label < bucket_start:
                continue
            if label == bucket_start:
                sel = labels <= label
            elif label == bucket_num - 1:
                sel = labels >= label
            else:
                sel = labels == label
            m, v = mu[sel], var[sel]
            n = m.shape[0]
            mean_mu = m.mean(0)
            mean_var = v.sum(0) / n ** 2
            var_mu = (v - mean_var + m ** 2 - mean_mu ** 2).sum(0) / n
            var_var = torch.zeros_like(mean_mu) if n == 1 else var_mu ** 2 * 2 / (n - 1)
            b = int(label - bucket_start)
            f = 0.0 if factor_first else momentum
            running_mean[b] = (1 - f) * torch.cat((mean_mu, mean_var)) + f * running_mean[b]
            running_var[b] = (1 - f) * torch.cat((var_mu, var_var)) + f * running_var[b]

    def smooth(x, w):
        padded = F.pad(x.unsqueeze(1).permute(2, 1, 0), pad=(half, half), mode="reflect")
        return F.conv1d(padded, w.view(1, 1, -1)).permute(2, 1, 0).squeeze(1)

    for e in range(2):
        labels = torch.tensor([3, 3, 4, 5, 5, 5, 6, 7, 9, 9, 11, 1, 14, 4], dtype=dt)
        mu = torch.randn(len(labels), d, generator=g, dtype=dt) + labels[:, None] * 0.3
        var = torch.rand(len(labels), d, generator=g, dtype=dt) + 0.1
        update(mu, var, labels, e == 0)
        epochs.append({"labels": labels.tolist(), "mean": mu.tolist(), "var": var.tolist()})
    mu_r, var_r = torch.tensor_split(running_mean, 2, dim=1)
    sm = torch.cat((smooth(mu_r, window), smooth(var_r, window ** 2)), 1)
    mu_v, var_v = torch.tensor_split(running_var, 2, dim=1)
    sv = torch.cat((smooth(mu_v, window), smooth(var_v, window ** 2)), 1)
    # Calibrate: bins 0 (3), 5 (8, never seen: initial statistics), 8 (11), 4 (7: one sample
    # per epoch, no spread) and 0 again (2, pooled).
    labels = torch.tensor([3.0, 8.0, 11.0, 7.0, 2.0], dtype=dt)
    mu = torch.randn(len(labels), d, generator=g, dtype=dt)
    var = torch.rand(len(labels), d, generator=g, dtype=dt) + 0.1
    out_mu, out_var = [], []
    for i, y in enumerate(labels):
        b = int(min(max(y - bucket_start, 0), nb - 1))
        m1, v1, m2, v2 = running_mean[b], running_var[b], sm[b], sv[b]
        mu_mu_1, mu_var_1 = torch.tensor_split(m1, 2)
        var_mu_1, _ = torch.tensor_split(v1, 2)
        mu_mu_2, mu_var_2 = torch.tensor_split(m2, 2)
        var_mu_2, _ = torch.tensor_split(v2, 2)
        if torch.sum(var_mu_1) < 1e-10:
            # The official early return: a bin without spread (one sample) is left as it is.
            out_mu.append(mu[i])
            out_var.append(var[i])
            continue
        # (The official branch for some zero dimensions drops them from the batch; the data
        # here has none.)
        assert not (var_mu_1 == 0).any()
        f = torch.clamp(var_mu_2 / var_mu_1, 0.1, 10)
        out_mu.append((mu[i] - mu_mu_1) * torch.sqrt(f) + mu_mu_2)
        out_var.append((var[i] + mu_var_1) * torch.sqrt(f) + mu_var_2)
    return {"dim": d, "bucket_start": bucket_start, "bucket_num": bucket_num,
            "epochs": epochs, "running_mean": running_mean.tolist(),
            "running_var": running_var.tolist(), "window": window.tolist(),
            "smoothed_mean": sm.tolist(), "smoothed_var": sv.tolist(),
            "labels": labels.tolist(),
            "mean": mu.tolist(), "var": var.tolist(),
            "calibrated_mean": torch.stack(out_mu).tolist(),
            "calibrated_var": torch.stack(out_var).tolist()}


def main():
    g = torch.Generator().manual_seed(17)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dt)
    laplace = [
        laplace_case("plain", r(7) * 2 + 10, r(7), r(7) * 3 + 10, None),
        laplace_case("weighted", r(7) * 2 + 10, r(7), r(7) * 3 + 10, torch.rand(7, generator=g, dtype=dt) * 2),
        # Log scales beyond the clamps: their gradient is 0; an exact hit of the mean.
        laplace_case("clamped", torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=dt),
                     torch.tensor([-7.0, 6.5, 0.3, -4.0], dtype=dt),
                     torch.tensor([1.5, 2.0, 2.0, 4.1], dtype=dt), None),
        laplace_case("single", torch.tensor([3.0], dtype=dt), torch.tensor([0.2], dtype=dt),
                     torch.tensor([1.0], dtype=dt), torch.tensor([2.5], dtype=dt)),
    ]
    vir = [
        vir_case("unweighted", r(6, 3) * 4, r(6) * 5, None, 0.01),
        vir_case("weighted", r(6, 3) * 4, r(6) * 5, torch.tensor([0.3, 1.0, 2.5, 0.8, 1.2, 4.0], dtype=dt), 0.01),
        vir_case("large_reg_prior", r(5, 3) * 10, r(5) * 5, torch.tensor([1.0, 0.5, 1.5, 1.0, 2.0], dtype=dt), 0.5, prior_nu=0.5, prior_alpha=0.7),
        vir_case("single", r(1, 3), torch.tensor([2.0], dtype=dt), None, 0.01),
    ]
    xs = torch.tensor([0.05, 0.3, 0.5, 1.0, 1.3, 2.5, 5.9, 6.1, 17.25, 250.0], dtype=dt)
    special = {"x": xs.tolist(), "lgamma": torch.lgamma(xs).tolist(), "digamma": torch.digamma(xs).tolist()}
    (Path(__file__).parent / "uncertainty.json").write_text(json.dumps({
        "description": "UVOTE Laplace NLL / multi-head loss and VIR conjugate-prior NIG loss, "
                       "float64 PyTorch transcriptions of the official code, with gradients.",
        "tolerance": {"rtol": 1e-9, "atol": 1e-12},
        "torch": torch.__version__,
        "scipy": __import__("scipy").__version__,
        "laplace": laplace,
        "uvote": uvote_case(g),
        "vir": vir,
        "special": special,
        "prm": prm_case(torch.Generator().manual_seed(23)),
    }, indent=1))


if __name__ == "__main__":
    main()
