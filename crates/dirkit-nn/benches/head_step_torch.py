#!/usr/bin/env python3
"""PyTorch counterpart of `cargo bench -p dirkit-nn --bench head_step`: the same regression-head
MLP training step, data, initial weights and optimiser, for side-by-side figures.

One step, f32, batch 256: x (256 x 64) -> Linear(64, 256) -> ReLU -> Linear(256, 1) -> loss ->
backward -> AdamW (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01) over every
parameter (and Balanced MSE's noise sigma). Losses (`mlp` is `l1`, named as the Rust side's
candle baseline):

- l1, mse, huber (delta 1), focal-l1 / focal-mse (sigmoid activation, beta 0.2, gamma 1);
- bmc, gai (the fixed 3-component mixture pi (0.5, 0.3, 0.2), mu (30, 45, 70),
  var (64, 100, 225)), bni (bins 3..99, p_b proportional to exp(-(c-38)^2 / 800) + 0.01):
  Balanced MSE with a learnable sigma (init 1), each multiplied by 2 sigma^2 held constant;
- l1+lds: L1 with per-sample LDS weights (sqrt-inverse, gaussian ks 5 sigma 2), precomputed
  per sample as the reference's dataset hands them to the loop;
- l1+fds: L1 on FDS-calibrated hidden features, diagonal: z' = (z - mu_b) * s_b + mu~_b with
  the per-bin maps gathered by label (97 bins) -- fixed maps, as between two epoch ends.

Data and the initial weights come from the counter-based splitmix64 streams of fds_torch.py
(imported from this directory), as the Rust bench's do, so the first step's loss is printed for
comparison with `HEAD_STEP_CHECK=1 cargo bench ... --bench head_step` (FDS's maps differ: its
first loss is not comparable).

Install and run (CPU-only PyTorch is enough; keep the environment out of the repository):

    python3 -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch numpy
    /tmp/torch-venv/bin/python crates/dirkit-nn/benches/head_step_torch.py --threads 1 2

Prints the median over --repeats runs of the mean step time of --steps steps (after a warm-up
of the same length), steps/s, per loss and thread count, and next to it dirkit's median from the
last `cargo bench` run (run it first with the same `RAYON_NUM_THREADS`) and the ratio
PyTorch / dirkit (above 1: dirkit is faster).
"""

import argparse
import pathlib
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# dirkit's figure from the last `cargo bench` run (the helper lives with dirkit-compute's benches).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "dirkit-compute" / "benches"))
from criterion_ratio import versus  # noqa: E402

# The seeded streams and ages of the FDS bench (same directory; importing it runs no benchmark).
from fds_torch import BIN_START, long_tailed_ages, uniforms

BATCH = 256
D_IN = 64
HIDDEN = 256
N_BINS = 97

# The reference LDS window for gaussian ks 5, sigma 2 (peak-normalised; see methods.md, the
# tails of the sampled Gaussian fold back into the window).
LDS_WINDOW = np.array([0.8582852378, 0.9458276491, 1.0, 0.9458276491, 0.8582852378])


def uniform_tensor(stream, shape, bound):
    n = int(np.prod(shape))
    return torch.from_numpy((bound * (2.0 * uniforms(stream, n) - 1.0)).astype(np.float32)).reshape(shape)


def batch():
    ages = long_tailed_ages(BATCH)
    return uniform_tensor(5, (BATCH, D_IN), 1.0), torch.from_numpy(ages.astype(np.float32))


def lds_weights(ages):
    """sqrt-inverse LDS weights with mean 1 (methods.md section 3)."""
    bins = (ages - BIN_START).astype(np.int64)
    t = np.sqrt(np.bincount(bins, minlength=N_BINS).astype(np.float64))
    d = np.convolve(t, LDS_WINDOW, mode="same")
    u = 1.0 / d[bins]
    return torch.from_numpy((len(u) * u / u.sum()).astype(np.float32))


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = torch.nn.Linear(D_IN, HIDDEN)
        self.head = torch.nn.Linear(HIDDEN, 1)
        b1, b2 = 1.0 / np.sqrt(D_IN), 1.0 / np.sqrt(HIDDEN)
        with torch.no_grad():
            self.trunk.weight.copy_(uniform_tensor(10, (HIDDEN, D_IN), b1))
            self.trunk.bias.copy_(uniform_tensor(11, (HIDDEN,), b1))
            self.head.weight.copy_(uniform_tensor(12, (1, HIDDEN), b2))
            self.head.bias.fill_(40.0)


def focal(e, l):
    return l * (2.0 * torch.sigmoid(0.2 * e.abs()) - 1.0)


def balanced(pred, y, sigma, variant):
    s2 = sigma**2
    if variant == "bmc":
        logits = -(pred[:, None] - y[None, :]) ** 2 / (2 * s2)
        loss = F.cross_entropy(logits, torch.arange(len(pred)))
    elif variant == "gai":
        pi = torch.tensor([0.5, 0.3, 0.2])
        mu = torch.tensor([30.0, 45.0, 70.0])
        var = torch.tensor([64.0, 100.0, 225.0])
        total = var + s2
        mse = (pred - y) ** 2 / (2 * s2) + 0.5 * torch.log(s2)
        log_prob = pi.log() - 0.5 * total.log() - (pred[:, None] - mu) ** 2 / (2 * total)
        loss = (mse + torch.logsumexp(log_prob, dim=1)).mean()
    else:
        centres = BIN_START + torch.arange(N_BINS, dtype=torch.float32)
        p = torch.exp(-((centres - 38.0) ** 2) / 800.0) + 0.01
        p = p / p.sum()
        mse = (pred - y) ** 2 / (2 * s2)
        log_prob = p.log() - (pred[:, None] - centres) ** 2 / (2 * s2)
        loss = (mse + torch.logsumexp(log_prob, dim=1)).mean()
    return loss * (2 * s2).detach()


class Step:
    def __init__(self, name):
        self.name = name
        self.model = Mlp()
        self.x, self.y = batch()
        params = list(self.model.parameters())
        self.sigma = None
        if name in ("bmc", "gai", "bni"):
            self.sigma = torch.nn.Parameter(torch.ones(()))
            params.append(self.sigma)
        self.w = lds_weights(self.y.numpy()) if name == "l1+lds" else None
        if name == "l1+fds":
            self.bins = (self.y - BIN_START).long()
            g = torch.Generator().manual_seed(0)
            self.shift = torch.rand(N_BINS, HIDDEN, generator=g)
            self.scale = 0.5 + torch.rand(N_BINS, HIDDEN, generator=g)
            self.target = torch.rand(N_BINS, HIDDEN, generator=g)
        self.opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)

    def loss(self):
        h = torch.relu(self.model.trunk(self.x))
        if self.name == "l1+fds":
            b = self.bins
            h = (h - self.shift.index_select(0, b)) * self.scale.index_select(0, b) + self.target.index_select(0, b)
        pred = self.model.head(h).flatten()
        e = pred - self.y
        n = self.name
        if n in ("mlp", "l1"):
            return e.abs().mean()
        if n == "l1+lds" or n == "l1+fds":
            l = e.abs()
            return (l * self.w).mean() if self.w is not None else l.mean()
        if n == "mse":
            return (e * e).mean()
        if n == "huber":
            return F.huber_loss(pred, self.y, delta=1.0)
        if n == "focal-l1":
            return focal(e, e.abs()).mean()
        if n == "focal-mse":
            return focal(e, e * e).mean()
        return balanced(pred, self.y, self.sigma, n)

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss()
        loss.backward()
        self.opt.step()
        return loss


NAMES = ["mlp", "l1", "mse", "huber", "focal-l1", "focal-mse", "bmc", "gai", "bni", "l1+lds", "l1+fds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=500, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"torch {torch.__version__}")
    for name in NAMES:
        print(f"first-step loss: {name} {Step(name).step().item():.6f}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name in NAMES:
            s = Step(name)
            for _ in range(args.steps):
                s.step()
            runs = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    s.step()
                runs.append((time.perf_counter() - t0) / args.steps)
            t = statistics.median(runs)
            bench_id = "mlp/dirkit" if name == "mlp" else f"loss/{name}"
            print(
                f"threads {threads}  {name:<10} {1e6 * t:8.1f} us/step  {1 / t:7.0f} steps/s"
                + versus("head_step_b256", bench_id, t, "us")
            )


if __name__ == "__main__":
    main()
