#!/usr/bin/python3
"""PyTorch peer of tpp_train: the same model, schedule and data, so images/s and accuracy compare like for like.

Usage (Debian's interpreter and python3-torch, nothing else):
  /usr/bin/python3 bench/torch_train.py [--model lenet5|lenet300] [--optimizer sgd|adam] [--epochs E] [--batch B]
      [--lr L] [--weight-decay W] [--seed S] [--threads T] [--linear blas|onednn] [--data DIR] [--json FILE]

What it matches in tpp_train (DESIGN.md 3c):
- data: Fashion-MNIST IDX files (gzip), pixel/255 normalised with the training set's mean and std;
- models: lenet5 (conv 6@5x5 pad 2, relu, maxpool 2, conv 16@5x5, relu, maxpool 2, fc 400-120-84-10 with relu)
  and lenet300 (fc 784-300-100-10 with relu), PyTorch's default initialisation;
- schedule: a fresh shuffle per epoch, mini-batches of B with the last partial batch dropped, mean softmax
  cross-entropy, SGD with momentum 0.9 (lr 0.01) or Adam (0.9, 0.999, eps 1e-8, lr 1e-3), weight decay 0 unless
  given, the learning rate cosine-decayed per step: lr_t = lr * 0.5 * (1 + cos(pi t / total_steps));
- per epoch: mean training loss over the epoch's batches, test accuracy on the 10000 test images, seconds of the
  training loop only (data already in tensors) and images/s = steps * B / seconds;
- --json writes tpp_train's format with "multiplier": "pytorch".

--linear: Debian's python3-torch 1.13 is built with BLAS_INFO=generic, so nn.Linear runs on whatever libblas.so.3
the system selects; with only the netlib reference BLAS installed that is ~2.5 GFLOP/s, and the fully connected
layers dominate. `--linear onednn` computes each fully connected layer as a 1x1 convolution, which PyTorch hands
to oneDNN (forward and backward): the same parameters, initialisation and arithmetic up to summation order, only
another GEMM. The default, blas, is stock PyTorch as installed.
"""

import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def read_idx(path):
    """An IDX file (gzip) as a numpy array: magic 0x0000 <dtype 0x08 = ubyte> <ndim>, big-endian dims, data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        sys.exit(f"torch_train: {path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        sys.exit(f"torch_train: {path}: {data.size} bytes of data, the header says {dims}")
    return data.reshape(dims)


def load(data_dir):
    """(train images, train labels, test images, test labels); images (N, 1, 28, 28) float32, normalised."""
    def part(prefix):
        x = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
        if x.shape[0] != y.shape[0]:
            sys.exit(f"torch_train: {prefix}: {x.shape[0]} images but {y.shape[0]} labels")
        return x.astype(np.float64) / 255.0, y.astype(np.int64)

    x_train, y_train = part("train")
    x_test, y_test = part("t10k")
    mean, std = x_train.mean(), x_train.std()  # of the training set only, applied to both

    def tensor(x):
        return torch.from_numpy(((x - mean) / std).astype(np.float32)).unsqueeze(1).contiguous()

    return tensor(x_train), torch.from_numpy(y_train), tensor(x_test), torch.from_numpy(y_test), mean, std


class onednn_linear(nn.Linear):
    """nn.Linear (same parameters and initialisation) computed as a 1x1 convolution, i.e. by oneDNN."""

    def forward(self, x):  # (N, in) -> (N, out)
        n = x.shape[0]
        w = self.weight.view(self.out_features, self.in_features, 1, 1)
        return F.conv2d(x.reshape(n, self.in_features, 1, 1), w, self.bias).view(n, self.out_features)


LINEAR = {"blas": nn.Linear, "onednn": onednn_linear}


class lenet5(nn.Module):
    def __init__(self, linear):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)  # (N, 6, 28, 28) -> pool (N, 6, 14, 14)
        self.conv2 = nn.Conv2d(6, 16, 5)            # (N, 16, 10, 10) -> pool (N, 16, 5, 5)
        self.fc1 = linear(400, 120)
        self.fc2 = linear(120, 84)
        self.fc3 = linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class lenet300(nn.Module):
    def __init__(self, linear):
        super().__init__()
        self.fc1 = linear(784, 300)
        self.fc2 = linear(300, 100)
        self.fc3 = linear(100, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


MODELS = {"lenet5": lenet5, "lenet300": lenet300}


def positive(kind):
    def parse(s):
        v = kind(s)
        if not v > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {s}")
        return v
    return parse


def arguments():
    p = argparse.ArgumentParser(description="PyTorch peer of tpp_train (Fashion-MNIST, same model and schedule)")
    p.add_argument("--model", choices=sorted(MODELS), default="lenet5")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--epochs", type=positive(int), default=3)
    p.add_argument("--batch", type=positive(int), default=64)
    p.add_argument("--lr", type=positive(float), default=None, help="default 0.01 for sgd, 1e-3 for adam")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=positive(int), default=1)
    p.add_argument("--linear", choices=sorted(LINEAR), default="blas",
                   help="fully connected layers by the system BLAS (stock) or by oneDNN as 1x1 convolutions")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--json", default=None, metavar="FILE")
    a = p.parse_args()
    if a.weight_decay < 0:
        p.error("--weight-decay must be >= 0")
    if a.lr is None:
        a.lr = 1e-3 if a.optimizer == "adam" else 0.01
    return a


def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    model.train()
    return correct / x.shape[0]


def main():
    a = arguments()
    # Thread counts first: interop threads can only be set before any parallel work starts.
    torch.set_num_interop_threads(1)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    x_train, y_train, x_test, y_test, mean, std = load(a.data)
    steps = x_train.shape[0] // a.batch  # the last partial batch is dropped
    if steps == 0:
        sys.exit(f"torch_train: --batch {a.batch} is larger than the training set ({x_train.shape[0]})")
    total = steps * a.epochs

    model = MODELS[a.model](LINEAR[a.linear])
    if a.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=a.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8,
                               weight_decay=a.weight_decay)
    shuffle = torch.Generator().manual_seed(a.seed)

    print(f"torch {torch.__version__}, {a.model}, {a.optimizer} lr {a.lr:g} (cosine over {total} steps), "
          f"batch {a.batch}, {steps} steps/epoch, {a.threads} thread(s), linear by {a.linear}, "
          f"normalised with mean {mean:.4f} std {std:.4f}", flush=True)
    print(f"{'epoch':>5} {'train loss':>10} {'test acc':>8} {'seconds':>8} {'images/s':>9}", flush=True)

    epochs = []
    t = 0
    for epoch in range(1, a.epochs + 1):
        order = torch.randperm(x_train.shape[0], generator=shuffle)
        loss_sum = torch.zeros((), dtype=torch.float64)
        start = time.perf_counter()
        for s in range(steps):
            idx = order[s * a.batch:(s + 1) * a.batch]
            for g in opt.param_groups:
                g["lr"] = a.lr * 0.5 * (1.0 + math.cos(math.pi * t / total))
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            t += 1
        seconds = time.perf_counter() - start
        acc = accuracy(model, x_test, y_test)
        row = {"epoch": epoch, "train_loss": float(loss_sum) / steps, "test_accuracy": acc,
               "seconds": seconds, "images_per_second": steps * a.batch / seconds}
        epochs.append(row)
        print(f"{epoch:>5} {row['train_loss']:>10.4f} {acc:>8.4f} {seconds:>8.2f} "
              f"{row['images_per_second']:>9.0f}", flush=True)

    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": a.model, "multiplier": "pytorch", "test_accuracy": epochs[-1]["test_accuracy"],
                       "epochs": epochs}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
