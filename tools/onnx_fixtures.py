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


def export(torch, model, path, opset):
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), path, opset_version=opset,
                      input_names=["image"], output_names=["scores"],
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
    print("wrote", sorted(os.listdir(OUT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
