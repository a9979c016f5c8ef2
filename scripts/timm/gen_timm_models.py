"""Whole-model fixtures from timm's HaloNet / BoTNet family (timm 1.0.29, the installed package).

vicinity's copy of the project's fixture generator (shared tools/gen_timm_models.py), extended with
--ctor (extra timm.create_model keyword arguments, e.g. '{"width_factor": 0.25}' for a small network of
the same classes and key names), --size (input side; fixed-size models also get img_size) and --quantise-input
(inputs snapped to 1/8 steps so the files pack small). Without those options the output is the original's.

Each fixture is a safetensors file + JSON, in the layer-fixture format (shared/design/reference-layers.md §8):
  param.<timm state_dict key>   every entry of model.state_dict() (weights quantised, see below)
  input.x                       float32 images (B, 3, S, S), S = the model's default input size
  output.y                      float32 logits of model(input.x) in eval mode
JSON: spec.kind = "timm.models.<name>", spec.ctor = {"num_classes": 10}, mode "eval".

Weights: timm's own init, then every floating tensor is snapped to 15 levels per tensor (so git packs the
files small) and tensors that timm zero-initialises (last-BN gammas, some biases) get small non-zero values, so
every path of the network moves the logits. BN running statistics are random (mean ~ N(0, 0.1), var in
[0.5, 1.5]). The tolerance is 20x the float32-vs-float64 difference of timm itself, floored at 1e-4.

Run with a Python whose torch has timm 1.0.29 importable, e.g. Debian's torch 1.13 + torchvision 0.14 plus
`pip install --no-deps timm==1.0.29 huggingface_hub safetensors` in a --system-site-packages venv:
  python gen_timm_models.py --out DIR --names halonet_h1,halonet26t [--split open]
"""
import argparse
import json
import os

import torch
import timm
from safetensors.torch import save_file


def quantise_(sd, gen):
    for k, t in sd.items():
        if not t.is_floating_point():
            continue
        if k.endswith("running_mean"):
            t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
        elif k.endswith("running_var"):
            t.copy_(0.5 + torch.rand(t.shape, generator=gen))
        if t.abs().max() == 0:  # zero-initialised by timm: give it a small random value
            # (biases stay tiny so that the logits come from the features, not from the head's bias)
            t.copy_(torch.randn(t.shape, generator=gen) * (0.01 if k.endswith("bias") else 0.2))
        if k.endswith(".weight") and t.ndim == 1 and torch.all(t == 1):  # BN/LN gammas at 1: perturb
            t.copy_(1 + 0.2 * torch.randn(t.shape, generator=gen))
        step = t.abs().max() / 7
        t.copy_(torch.round(t / step) * step)


def rel_l2(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def make(name, out, split, batch, seed, extra=None, size=None, quantise_input=False, num_classes=10):
    ctor = {"num_classes": num_classes, **(extra or {})}
    if size is not None and timm.models.get_pretrained_cfg_value(name, "fixed_input_size"):
        ctor["img_size"] = size
    torch.manual_seed(seed)
    m = timm.create_model(name, pretrained=False, **ctor)
    m.eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        sd = m.state_dict()
        quantise_(sd, gen)
        m.load_state_dict(sd)
    if size is None:
        size = m.pretrained_cfg.get("input_size", (3, 224, 224))[1:]
    else:
        size = (size, size)
    x = torch.randn((batch, 3) + tuple(size), generator=torch.Generator().manual_seed(seed + 2))
    if quantise_input:
        x = torch.round(x * 8) / 8
    with torch.no_grad():
        y = m(x)
        y64 = m.double()(x.double())
        m.float()
    err = rel_l2(y, y64)
    bias = [v for k, v in m.state_dict().items() if k.endswith("fc.bias")]
    feature_share = float((y - bias[0]).norm() / y.norm()) if bias else 1.0
    tensors = {f"param.{k}": v.contiguous() for k, v in m.state_dict().items()}
    tensors["input.x"] = x.contiguous()
    tensors["output.y"] = y.contiguous()
    base = f"timm-{name}-{split}"
    save_file(tensors, os.path.join(out, base + ".safetensors"))
    meta = {
        "fixture": base + ".safetensors",
        "reference": {"package": "timm", "version": timm.__version__, "torch": torch.__version__,
                      "entry": f"timm.create_model('{name}', **{ctor})"},
        "spec": {"kind": f"timm.models.{name}", "ctor": ctor},
        "mode": "eval",
        "seed": seed,
        "input_layout": "NCHW",
        "input_shape": list(x.shape),
        "output_shape": list(y.shape),
        "params": sum(p.numel() for p in m.parameters()),
        "state_dict_keys": len(sd),
        "tensors": {
            "param.<name>": "every entry of timm's model.state_dict(), keys exactly as timm names them",
            "input.x": "float32 images", "output.y": "float32 logits of model(input.x), eval mode",
        },
        "float32_vs_float64": {"output_rel_l2": err},
        "feature_share": feature_share,
        "suggested_tolerance": {"rel_l2": max(1e-4, 20 * err),
                                "note": "relative L2 error of the logits; 20x timm's own float32-vs-float64 error, floored at 1e-4"},
        "split": split,
    }
    with open(os.path.join(out, base + ".json"), "w") as f:
        json.dump(meta, f, indent=2)
    print(f"{base}: params {meta['params']:,} keys {len(sd)} input {list(x.shape)} f32-vs-f64 {err:.2e} feature share {feature_share:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--names", required=True)
    ap.add_argument("--split", default="open")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--ctor", default="{}", help="extra create_model kwargs as JSON")
    ap.add_argument("--size", type=int, default=None, help="input side (default: the model's)")
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--quantise-input", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for n in a.names.split(","):
        make(n, a.out, a.split, a.batch, a.seed, json.loads(a.ctor), a.size, a.quantise_input, a.num_classes)
