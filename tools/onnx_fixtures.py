#!/usr/bin/env python3
"""ONNX test fixtures for `veil import` (issue #20), exported from PyTorch, with reference
logits computed by PyTorch on real MNIST test images (the golden values the Rust tests
compare veil's logits with; no Python runs in CI).

Writes into crates/veil-onnx/tests/fixtures/:
- `lenet5-veil-opset13.onnx`: veil's LeNet-5 (`tools/veil_torch.py` builds it from a veil weight
  file, so `veil import` must give back the same spec and weights);
- `torch-seq-opset11.onnx`, `torch-seq-opset17.onnx`: a PyTorch-native `nn.Sequential` (3x3
  convolutions with padding and stride, max and average pooling, `nn.Flatten`, two `nn.Linear`,
  dropout, a final softmax), seeded random weights, exported at two opsets;
- `torch-resnet-opset13.onnx`: a small ResNet (batch normalisation kept as
  BatchNormalization nodes, residual adds, a 1x1 projection shortcut, a padded max pool,
  global average pooling), seeded random weights and running statistics from a few
  training-mode passes over MNIST training images;
- `torch-mobile-opset17.onnx`: depthwise-separable blocks (grouped convolutions, batch
  normalisation folded into them by the exporter as usual, ReLU6 as Clip), a concatenation, a
  sigmoid, a padded average pool counting the padding, global average pooling;
- `<name>.logits.json` beside each: the torch version, the opset, the first N MNIST test
  images' indices and PyTorch's outputs for them (before the final softmax for torch-seq,
  whose softmax veil drops: an argmax and an inversion attack need the logits).

Usage: python3 tools/onnx_fixtures.py --weights runs/lenet5-mnist/model.safetensors
           [--data ../shared/data] [--images 16]
Needs torch (2.1.2 was used) and numpy; without them it says so and exits 0.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import veil_torch  # noqa: E402

OUT = os.path.join(HERE, "..", "crates", "veil-onnx", "tests", "fixtures")


def torch_seq(torch):
    nn = torch.nn
    torch.manual_seed(20)
    body = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(8 * 3 * 3, 32), nn.ReLU(), nn.Dropout(0.25), nn.Linear(32, 10))
    return body, nn.Sequential(body, nn.Softmax(dim=1))


def torch_resnet(torch):
    nn = torch.nn
    torch.manual_seed(21)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.a = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.a_bn = nn.BatchNorm2d(cout)
            self.b = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.b_bn = nn.BatchNorm2d(cout)
            self.proj = None
            if stride != 1 or cin != cout:
                self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.b_bn(self.b(torch.relu(self.a_bn(self.a(x)))))
            return torch.relu(y + (x if self.proj is None else self.proj(x)))

    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        Block(8, 8, 1), Block(8, 16, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def torch_mobile(torch):
    nn = torch.nn
    torch.manual_seed(22)

    def separable(cin, cout, stride):
        return nn.Sequential(
            nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin), nn.BatchNorm2d(cin),
            nn.ReLU6(), nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU6())

    class Mobile(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6())
            self.s1 = separable(8, 16, 2)
            self.side = nn.Conv2d(16, 8, 1)
            self.pool = nn.AvgPool2d(3, stride=2, padding=1)
            self.s2 = separable(24, 32, 1)
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            x = self.s1(self.stem(x))
            x = torch.cat([x, torch.sigmoid(self.side(x))], dim=1)
            x = self.s2(self.pool(x))
            return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    return Mobile()


def settle_batch_norm(torch, model, images):
    """Running statistics from a few training-mode passes (seeded), then evaluation mode."""
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), 64):
            model(torch.tensor(images[start:start + 64]).reshape(-1, 1, 28, 28))
    model.eval()


def export(torch, model, path, opset, keep_batch_norm=False):
    """`keep_batch_norm`: export BatchNormalization nodes (evaluation mode, running statistics)
    instead of letting the exporter fold them into the convolutions, its default."""
    model.eval()
    mode = torch.onnx.TrainingMode.PRESERVE if keep_batch_norm else torch.onnx.TrainingMode.EVAL
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), path, opset_version=opset,
                      input_names=["image"], output_names=["scores"], training=mode,
                      dynamic_axes={"image": {0: "batch"}, "scores": {0: "batch"}})


def write_logits(torch, model, images, path, opset, note):
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor(images).reshape(-1, 1, 28, 28)).numpy()
    doc = {"torch": torch.__version__, "opset": opset, "images": "MNIST test split, first %d" % len(images),
           "note": note, "logits": out.astype(float).round(7).tolist()}
    with open(path, "w") as f:
        json.dump(doc, f, indent=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True, help="a veil LeNet-5 weight file")
    ap.add_argument("--data", default=os.environ.get("VEIL_DATA", "../shared/data"))
    ap.add_argument("--images", type=int, default=16)
    a = ap.parse_args()
    torch = veil_torch.import_torch(ssim=False)
    if torch is None:
        print("skipped: torch and numpy are needed (pip install torch==2.1.2 numpy); nothing was written")
        return 0
    if not os.path.isfile(a.weights):
        print(f"skipped: no weight file {a.weights} (train one with veil train --model lenet5); nothing was written")
        return 0
    os.makedirs(OUT, exist_ok=True)
    images = veil_torch.idx_split(a.data, "mnist")[1][: a.images]
    spec, tensors = veil_torch.read_weights(a.weights)
    lenet, _ = veil_torch.build(spec, tensors)
    name = "lenet5-veil-opset13"
    export(torch, lenet, os.path.join(OUT, name + ".onnx"), 13)
    write_logits(torch, lenet, images, os.path.join(OUT, name + ".logits.json"), 13,
                 "veil's LeNet-5 built by tools/veil_torch.py from " + os.path.basename(a.weights))
    body, with_softmax = torch_seq(torch)
    for opset in (11, 17):
        name = "torch-seq-opset%d" % opset
        export(torch, with_softmax, os.path.join(OUT, name + ".onnx"), opset)
        write_logits(torch, body, images, os.path.join(OUT, name + ".logits.json"), opset,
                     "nn.Sequential of tools/onnx_fixtures.py (seed 20); logits before the final softmax")
    train_images = veil_torch.idx_split(a.data, "mnist")[0][:512]
    for name, model, opset, keep in (("torch-resnet", torch_resnet(torch), 13, True),
                                     ("torch-mobile", torch_mobile(torch), 17, False)):
        settle_batch_norm(torch, model, train_images)
        name = "%s-opset%d" % (name, opset)
        export(torch, model, os.path.join(OUT, name + ".onnx"), opset, keep_batch_norm=keep)
        write_logits(torch, model, images, os.path.join(OUT, name + ".logits.json"), opset,
                     "tools/onnx_fixtures.py graph model (seeded); batch statistics from 512 "
                     "MNIST training images")
    print("wrote", sorted(os.listdir(OUT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
