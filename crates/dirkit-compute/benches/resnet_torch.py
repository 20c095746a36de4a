"""PyTorch counterpart of `cargo bench -p dirkit-compute --bench resnet`: the same training step on
the same models, for side-by-side figures.

One step: forward in training mode (batch statistics), a linear head to one output, L1 loss,
backward, AdamW (PyTorch's defaults, which are candle's `ParamsAdamW::default()`: lr 1e-3,
betas (0.9, 0.999), eps 1e-8, weight decay 0.01), f32, on a fixed random batch:

- `cpu_small_32px_b64`: torchvision-style ResNet-18 with width 16, a 3x3 stride-1 stem and no
  max pool (dirkit's `ResNetConfig::cpu_small`), 64 x 3 x 32 x 32;
- `resnet18_64px_b16`: torchvision's ResNet-18 without `fc`, 16 x 3 x 64 x 64.

The models are built here (torchvision's layout and initialisation: Kaiming-normal fan-out
convolutions, batch-norm scale 1 and shift 0) so that torchvision is not needed. Prints the
median step time, steps/s and images/s per thread count (with `--device cuda`, on the GPU; each
step ends by reading the loss, so it waits for the device), and on the CPU next to it dirkit's
median from the last `cargo bench` run (run that first with the same `RAYON_NUM_THREADS`) and
the ratio PyTorch / dirkit (above 1: dirkit is faster).

Install and run (CPU-only PyTorch is enough):

    python3 -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch
    /tmp/torch-venv/bin/python crates/dirkit-compute/benches/resnet_torch.py --threads 1 2
"""

import argparse
import statistics
import time

import torch
from torch import nn

from criterion_ratio import versus


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, ReLU after the first and after the join; a strided
    1x1 convolution with batch norm on the shortcut when the shape changes (option B)."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(y + shortcut)


class ResNet18(nn.Module):
    """ResNet-18 without the classifier: returns the pooled features (N, 8 * width)."""

    def __init__(self, width=64, small_stem=False):
        super().__init__()
        if small_stem:
            self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(width)
        layers, c_in = [], width
        for i in range(4):
            c = width << i
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(c_in, c, stride), BasicBlock(c, c, 1)))
            c_in = c
        self.layers = nn.Sequential(*layers)
        self.feature_dim = c_in
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        y = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        return self.layers(y).mean((2, 3))


def bench(name, net, batch, size, steps, device="cpu"):
    torch.manual_seed(0)
    head = nn.Linear(net.feature_dim, 1)
    net, head = net.to(device), head.to(device)
    params = list(net.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params)
    x = (torch.rand(batch, 3, size, size) * 2 - 1).to(device)
    y = (torch.rand(batch, 1) * 2 - 1).to(device)
    net.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = (head(net(x)) - y).abs().mean()
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(
        f"{name:22s} threads={torch.get_num_threads()}  step {median * 1e3:8.1f} ms"
        f"  (min {min(times) * 1e3:.1f})  {1 / median:6.2f} steps/s  {batch / median:7.1f} img/s"
        + (versus("resnet", name, median) if device == "cpu" else f"  ({device})")
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per case")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    print(f"torch {torch.__version__}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        small = ResNet18(width=16, small_stem=True)
        bench("cpu_small_32px_b64", small, 64, 32, args.steps, args.device)
        torch.manual_seed(0)
        bench("resnet18_64px_b16", ResNet18(width=64), 16, 64, args.steps, args.device)


if __name__ == "__main__":
    main()
