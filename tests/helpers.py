"""Small shared pieces for the tests: a quickly trained MNIST model."""
import torch

from aft_fast.data import mnist5k
from aft_fast.models import build


def train_small_cnn(epochs: int = 2, n: int = 2000, seed: int = 0):
    """A small CNN fitted on mnist5k for a few seconds (≈ 90% clean accuracy)."""
    torch.manual_seed(seed)
    model = build("small_cnn", 10, in_channels=1)
    x, y = mnist5k("train")
    x, y = x[:n], y[:n]
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        for i in range(0, n, 100):
            loss = torch.nn.functional.cross_entropy(model(x[i:i + 100]), y[i:i + 100])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
