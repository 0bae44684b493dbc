#!/usr/bin/env python3
"""Writes the built-in DistPrivacy profiles of crates/veil-plan/profiles/ (cifar_cnn, vgg16,
vgg19) from the rules below. Stated in the paper's text (DistPrivacy §II-C, §III): at tau 0.4,
CIFAR ReLU11 and ReLU22 go to 8 devices (Nf = 8 and 16) and ReLU32 to 4 (Nf = 32); at tau 0.8
only the first 2 layers of MNIST, the first 8 of CIFAR and CAR (VGG16) and the first 4 of
CELEBA (VGG19) are distributed, over 2 devices (Nf = P/2). Everything else is veil's
reconstruction, because Table I is unreadable in the extracted text: Nf = P/8 in blocks 1-2
and P/4 from block 3 at tau 0.4 (SP after the last conv block but one), Nf = P/4 at tau 0.6
(SP after block 3). Usage: python3 tools/paper_profiles.py (from the repository root)."""
import json

LAYERS = {
    "cifar_cnn": "conv11 relu11 conv12 relu12 pool1 conv21 relu21 conv22 relu22 pool2 conv31 relu31 conv32 relu32 pool3".split(),
    "vgg16": "conv11 relu11 conv12 relu12 pool1 conv21 relu21 conv22 relu22 pool2 conv31 relu31 conv32 relu32 conv33 relu33 pool3 conv41 relu41 conv42 relu42 conv43 relu43 pool4 conv51 relu51 conv52 relu52 conv53 relu53 pool5".split(),
    "vgg19": "conv11 relu11 conv12 relu12 pool1 conv21 relu21 conv22 relu22 pool2 conv31 relu31 conv32 relu32 conv33 relu33 conv34 relu34 pool3 conv41 relu41 conv42 relu42 conv43 relu43 conv44 relu44 pool4 conv51 relu51 conv52 relu52 conv53 relu53 conv54 relu54 pool5".split(),
}
DATASET = {"cifar_cnn": "cifar10", "vgg16": "stanford-cars", "vgg19": "celeba"}
# SP per tau: the first layer from which every layer is safe with all maps.
SP = {
    "cifar_cnn": {0.4: "pool3", 0.6: "pool3", 0.8: "relu22"},
    "vgg16": {0.4: "pool4", 0.6: "pool3", 0.8: "relu22"},
    "vgg19": {0.4: "pool4", 0.6: "pool3", 0.8: "pool1"},
}
CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}


def maps(model, layer):
    block = int(layer[-1]) if layer.startswith("pool") else int(layer[-2])
    if model == "cifar_cnn":
        return 64 if block == 1 else 128
    return CHANNELS[block]


def nf(model, layer, tau):
    p = maps(model, layer)
    block = int(layer[-1]) if layer.startswith("pool") else int(layer[-2])
    if tau == 0.8:
        return p // 2
    if tau == 0.6:
        return p // 4
    return p // 8 if block <= 2 else p // 4


for model, layers in LAYERS.items():
    thresholds = []
    for tau in (0.4, 0.6, 0.8):
        sp = SP[model][tau]
        before = layers[: layers.index(sp)]
        thresholds.append({"tau": tau, "nf": {l: nf(model, l, tau) for l in before}, "sp": sp})
    profile = {
        "version": 1,
        "model": model,
        "dataset": DATASET[model],
        "layers": layers,
        "entries": [],
        "thresholds": thresholds,
        "source": "DistPrivacy paper (built in): the tau 0.4 caps of CIFAR relu11/relu22/relu32 and the tau 0.8 split points are stated in its text; the other values are veil's reconstruction of its unreadable Table I (tools/paper_profiles.py). Measure your own with `veil profile`.",
    }
    with open(f"crates/veil-plan/profiles/{model}.json", "w") as f:
        json.dump(profile, f, indent=1)
        f.write("\n")
print("wrote", ", ".join(LAYERS))
