"""veil's model specs and weight files in PyTorch, for side-by-side references.

- `read_weights(path)`: a veil weight file (safetensors; the spec JSON in its `veil.spec`
  metadata) as (spec dict, {name: numpy array}), parsed without the safetensors package.
- `build(spec, tensors=None)`: the spec as a `torch.nn.Sequential` with the same layer names,
  shapes and weight layout (veil's layout is PyTorch's: conv `[out, in, kh, kw]`, linear
  `[out, in]`), loaded with `tensors` when given.
- `interpreter_has(python, modules)`: whether another interpreter has the reference's packages.
- `idx_split(data_dir, dataset)`: the train and test images of an IDX dataset (mnist,
  fashion-mnist) scaled to [0, 1] in file order, as veil-data reads them.

torch is imported lazily by the callers (`import_torch()`), so a tool can skip cleanly when
it is missing.
"""
import gzip
import json
import os
import struct

try:
    import numpy as np
except ImportError:  # the callers skip (see `import_torch`)
    np = None

IDX_DIRS = {"mnist": ["mnist"], "fashion": ["fashion-mnist", "fashion_mnist"],
            "fashion-mnist": ["fashion-mnist", "fashion_mnist"],
            "fmnist": ["fashion-mnist", "fashion_mnist"]}


def interpreter_has(python, modules):
    """Whether the interpreter `python` can import every one of `modules` (a tool's probe
    before it runs a reference side in that interpreter)."""
    import subprocess
    try:
        code = subprocess.run([python, "-c", "import " + ", ".join(modules)],
                              capture_output=True).returncode
    except OSError:
        return False
    return code == 0


def import_torch(ssim=True):
    """torch, or None when it, numpy or (with `ssim`) scikit-image is not installed."""
    if np is None:
        return None
    try:
        if ssim:
            import skimage.metrics  # noqa: F401
        import torch
        return torch
    except ImportError:
        return None


def read_weights(path):
    """(spec, tensors) of a veil weight file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 1 << 26:
            raise ValueError(f"{path}: a header of {n} bytes")
        header = json.loads(f.read(n))
        body = f.read()
    meta = header.pop("__metadata__", {})
    if "veil.spec" not in meta:
        raise ValueError(f"{path}: no veil.spec metadata (not a veil weight file)")
    tensors = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(body[a:b], dtype="<f4").reshape(t["shape"]).copy()
    return json.loads(meta["veil.spec"]), tensors


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def build(spec, tensors=None, upto=None):
    """The spec's layers (through layer `upto` when given) as an nn.Sequential (needs torch and
    numpy only: the engine benchmark's interpreter may lack scikit-image)."""
    torch = import_torch(ssim=False)
    nn = torch.nn
    shape = list(spec["input_shape"])
    mods = []
    for layer in spec["layers"]:
        op, name = layer["op"], layer["name"]
        if op == "conv2d":
            k, s, p = _pair(layer["kernel"]), _pair(layer.get("stride", [1, 1])), _pair(layer.get("padding", [0, 0]))
            m = nn.Conv2d(shape[0], layer["out_channels"], k, s, p)
            shape = [layer["out_channels"], (shape[1] + 2 * p[0] - k[0]) // s[0] + 1,
                     (shape[2] + 2 * p[1] - k[1]) // s[1] + 1]
        elif op in ("max_pool2d", "maxpool2d", "avg_pool2d", "avgpool2d"):
            k = _pair(layer["kernel"])
            s = _pair(layer["stride"]) if layer.get("stride") else k
            m = (nn.MaxPool2d if op.startswith("max") else nn.AvgPool2d)(k, s)
            shape = [shape[0], (shape[1] - k[0]) // s[0] + 1, (shape[2] - k[1]) // s[1] + 1]
        elif op == "conv_transpose2d":
            k, s, p = _pair(layer["kernel"]), _pair(layer.get("stride", [1, 1])), _pair(layer.get("padding", [0, 0]))
            extra = _pair(layer.get("output_padding", [0, 0]))
            m = nn.ConvTranspose2d(shape[0], layer["out_channels"], k, s, p, output_padding=extra)
            shape = [layer["out_channels"], (shape[1] - 1) * s[0] - 2 * p[0] + k[0] + extra[0],
                     (shape[2] - 1) * s[1] - 2 * p[1] + k[1] + extra[1]]
        elif op == "sigmoid":
            m = nn.Sigmoid()
        elif op == "reshape":
            target = list(layer["shape"])
            m = nn.Unflatten(1, tuple(target)) if len(target) == 3 else nn.Flatten()
            shape = target if len(target) == 3 else [int(np.prod(target))]
        elif op == "relu":
            m = nn.ReLU()
        elif op == "flatten":
            m = nn.Flatten()
            shape = [int(np.prod(shape))]
        elif op == "linear":
            m = nn.Linear(shape[0], layer["out_features"])
            shape = [layer["out_features"]]
        elif op == "dropout":
            m = nn.Dropout(layer["prob"])
        else:
            raise ValueError(f"layer {name}: op {op} has no PyTorch twin in this tool")
        mods.append((name, m))
        if name == upto:
            break
    else:
        if upto is not None:
            raise ValueError(f"no layer {upto} in {spec['name']}")
    net = nn.Sequential(__import__("collections").OrderedDict(mods))
    if tensors is not None:
        state = {k: torch.from_numpy(v) for k, v in tensors.items()
                 if k.split(".")[0] in dict(mods)}
        net.load_state_dict(state, strict=True)
    return net, shape


def _idx(path):
    """An IDX file of unsigned bytes (`path`, or `path` without `.gz`), as an array."""
    if os.path.exists(path):
        with gzip.open(path, "rb") as f:
            data = f.read()
    else:
        with open(path[:-3], "rb") as f:
            data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (magic {magic:#x})")
    ndim = magic & 0xFF
    dims = [struct.unpack(">I", data[4 + 4 * i:8 + 4 * i])[0] for i in range(ndim)]
    return np.frombuffer(data[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def idx_split(data_dir, dataset):
    """(train, test) images as float32 [n, 1, h, w] in [0, 1], in file order."""
    if dataset not in IDX_DIRS:
        raise ValueError(f"dataset {dataset}: this tool reads {sorted(IDX_DIRS)}")
    dirs = [os.path.join(data_dir, d) for d in IDX_DIRS[dataset]]
    d = next((d for d in dirs if os.path.isdir(d)), dirs[0])
    out = []
    for part in ("train", "t10k"):
        x = _idx(os.path.join(d, f"{part}-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
        out.append(x[:, None, :, :])
    return out[0], out[1]
