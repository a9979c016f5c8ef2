"""The PyTorch side of bench/layers.ts: each attention layer case as plain PyTorch running the
reference computation (the unfold / gather / einsum formulations of the reference modules: timm
HaloAttn and BottleneckAttn, NATTEN 0.14's semantics, the official LESA binary term and LSAG
attentions), timed forward and forward + backward, with the CPU allocator's peak bytes.

    python3 bench/layers.py --threads N --repeats R < cases.json > results.json

cases.json: [{"name", "kind", "batch", ...options}] (bench/layers.ts writes it). Answers one JSON
list of {"name", "forward", "step", "peakBytes"} (seconds: the median of R after one warm-up;
peakBytes: the most CPU storage bytes held during one forward + backward above what was held
before it, from the raw allocator events of torch.profiler with profile_memory=True, so exact).
Parameters are random (the timing and memory do not depend on their values).
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F


def param(*shape, std=0.05):
    return (torch.randn(*shape) * std).requires_grad_()


def make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


# --- timm HaloAttn (reference-layers.md §1): pad + unfold windows, rel logits by gathered tables.
def halo(c):
    dim, nh, bs, hs, stride = c["dim"], c["heads"], c["block"], c["halo"], c.get("stride", 1)
    dqk = make_divisible(dim, 8) // nh
    dv = dim // nh
    win = bs + 2 * hs
    bst = 2 if stride == 2 and bs % 2 == 0 else 1
    bds = bs // bst
    p = {"q": param(nh * dqk, dim, 1, 1), "kv": param(nh * (dqk + dv), dim, 1, 1),
         "h": param(2 * win - 1, dqk), "w": param(2 * win - 1, dqk)}
    rel_idx = (torch.arange(win)[None, :] - torch.arange(bds)[:, None] + win - 1)  # (bds, win)

    def forward(x):
        B, _, H, W = x.shape
        nby, nbx = H // bs, W // bs
        q = F.conv2d(x, p["q"], stride=bst)
        q = q.reshape(B * nh, dqk, nby, bds, nbx, bds).permute(0, 2, 4, 3, 5, 1)  # (b, by, bx, qy, qx, d)
        q = q.reshape(B * nh, nby * nbx, bds, bds, dqk)
        kv = F.pad(F.conv2d(x, p["kv"]), [hs, hs, hs, hs])
        kv = kv.unfold(2, win, bs).unfold(3, win, bs)  # (B, nh(dqk+dv), nby, nbx, win, win)
        kv = kv.reshape(B * nh, dqk + dv, nby * nbx, win * win).permute(0, 2, 3, 1)
        k, v = kv.split([dqk, dv], -1)
        rel_h = torch.einsum("bnyxd,ykd->bnyxk", q, p["h"][rel_idx])  # ky
        rel_w = torch.einsum("bnyxd,xkd->bnyxk", q, p["w"][rel_idx])  # kx
        rel = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(B * nh, nby * nbx, bds * bds, win * win)
        qf = q.reshape(B * nh, nby * nbx, bds * bds, dqk)
        attn = (qf @ k.transpose(-1, -2) * dqk ** -0.5 + rel).softmax(-1)
        out = (attn @ v).reshape(B, nh, nby, nbx, bds, bds, dv).permute(0, 1, 6, 2, 4, 3, 5)
        return out.reshape(B, nh * dv, nby * bds, nbx * bds)

    return forward, [c["batch"], dim, c["size"], c["size"]], p


# --- NATTEN 0.14 neighborhood attention (§6), NHWC: F.unfold windows, clamped starts selected.
def neighborhood(c):
    dim, nh, k = c["dim"], c["heads"], c["kernel"]
    dh = dim // nh
    H = W = c["size"]
    ns = k // 2
    p = {"qkv": param(3 * dim, dim), "qkv_b": param(3 * dim), "rpb": param(nh, 2 * k - 1, 2 * k - 1),
         "proj": param(dim, dim), "proj_b": param(dim)}
    starts = torch.clamp(torch.arange(H) - ns, 0, H - k)  # clamped window start per row (= per col)
    a = torch.arange(k)
    rel = starts[:, None] + a[None, :] - torch.arange(H)[:, None] + k - 1  # (H, k): bias row
    bias_idx = (rel[:, None, :, None] * (2 * k - 1) + rel[None, :, None, :]).reshape(H, W, k * k)

    def windows(t, B):  # (B, nh, H, W, dh) -> (B, nh, H, W, k², dh)
        u = F.unfold(t.permute(0, 1, 4, 2, 3).reshape(B * nh, dh, H, W), k)
        u = u.reshape(B * nh, dh, k * k, H - k + 1, W - k + 1)
        u = u.index_select(3, starts).index_select(4, starts)
        return u.reshape(B, nh, dh, k * k, H, W).permute(0, 1, 4, 5, 3, 2)

    def forward(x):
        B = x.shape[0]
        qkv = F.linear(x, p["qkv"], p["qkv_b"]).reshape(B, H, W, 3, nh, dh).permute(3, 0, 4, 1, 2, 5)
        q, key, val = qkv[0] * dh ** -0.5, qkv[1], qkv[2]
        bias = p["rpb"].reshape(nh, -1)[:, bias_idx]  # (nh, H, W, k²)
        attn = (torch.einsum("bnhwd,bnhwtd->bnhwt", q, windows(key, B)) + bias).softmax(-1)
        out = torch.einsum("bnhwt,bnhwtd->bnhwd", attn, windows(val, B))
        return F.linear(out.permute(0, 2, 3, 1, 4).reshape(B, H, W, dim), p["proj"], p["proj_b"])

    return forward, [c["batch"], H, W, dim], p


# --- official LESA binary term (§3, classification pe_type): BN'd qkv, three logit terms, sv + sve.
def lesa(c):
    I = O = c["dim"]
    g, S = c["groups"], c["size"]
    L = S * S
    qk, vp = O // g // 2, O // g
    p = {"qkv": param(2 * O, I, 1), "rel": param(2 * qk + vp, 2 * L - 1),
         "bn_qkv": (param(2 * O), param(2 * O)), "bn_sim": (param(3 * g), param(3 * g)),
         "bn_out": (param(2 * O), param(2 * O))}
    index = (torch.arange(L)[:, None] - torch.arange(L)[None, :] + L - 1).reshape(-1)

    def bn(t, wb):
        return F.batch_norm(t, None, None, wb[0], wb[1], training=True)

    def forward(x):
        N = x.shape[0]
        qkv = bn(F.conv1d(x.reshape(N, I, L), p["qkv"]), p["bn_qkv"]).reshape(N, g, 2 * qk + vp, L)
        q, k, v = qkv.split([qk, qk, vp], 2)
        E = p["rel"][:, index].reshape(2 * qk + vp, L, L)
        Eq, Ek, Ev = E.split([qk, qk, vp], 0)
        s_qk = torch.einsum("ngci,ngcj->ngij", q, k)
        s_qr = torch.einsum("ngci,cij->ngij", q, Eq)
        s_kr = torch.einsum("ngcj,cji->ngij", k, Ek)
        sim = bn(torch.cat([s_qk, s_qr, s_kr], 1), p["bn_sim"]).reshape(N, 3, g, L, L).sum(1)
        attn = sim.softmax(3)
        sv = torch.einsum("ngij,ngcj->ngci", attn, v)
        sve = torch.einsum("ngij,cij->ngci", attn, Ev)
        out = bn(torch.cat([sv, sve], -1).reshape(N, 2 * O, L), p["bn_out"])
        return out.reshape(N, O, 2, L).sum(-2).reshape(N, O, S, S)

    return forward, [c["batch"], I, S, S], p


# --- official LSAG CIFAR attentions (§4.2, §4.3): multi-query K/V (one head shared).
def lsag_local(c):
    D, nh, T, N = c["dim"], c["heads"], c["variants"], c["tokens"]
    dh = D // nh
    p = {"wq": param(D, D), "wq_b": param(D), "wkv": param(2 * dh, D), "wkv_b": param(2 * dh),
         "proj": param(D, D), "proj_b": param(D)}

    def forward(x, variants):
        B = x.shape[0]
        q = F.linear(x, p["wq"], p["wq_b"]).reshape(B, N, nh, 1, dh).permute(0, 2, 1, 3, 4)  # (B, nh, N, 1, dh)
        kv = F.linear(variants, p["wkv"], p["wkv_b"]).reshape(T, B, N, 2, dh).permute(3, 1, 2, 0, 4)
        k, v = kv[0].unsqueeze(1), kv[1].unsqueeze(1)  # (B, 1, N, T, dh)
        attn = (q @ k.transpose(-2, -1) * dh ** -0.5).softmax(-1)  # (B, nh, N, 1, T)
        out = (attn @ v).squeeze(3).permute(0, 2, 1, 3).reshape(B, N, D)
        return F.linear(out, p["proj"], p["proj_b"])

    return forward, [[c["batch"], N, D], [T, c["batch"], N, D]], p


def lsag_global(c):
    D, nh, N = c["dim"], c["heads"], c["tokens"]
    dh = D // nh
    p = {"wq": param(D, D), "wq_b": param(D), "wkv": param(2 * dh, D), "wkv_b": param(2 * dh),
         "proj": param(D, D), "proj_b": param(D)}

    def forward(x):
        B = x.shape[0]
        q = F.linear(x, p["wq"], p["wq_b"]).reshape(B, N, nh, dh).transpose(1, 2)  # (B, nh, N, dh)
        k, v = F.linear(x, p["wkv"], p["wkv_b"]).reshape(B, N, 2, dh).unbind(2)    # (B, N, dh)
        attn = (q @ k.unsqueeze(1).transpose(-2, -1) * dh ** -0.5).softmax(-1)
        out = (attn @ v.unsqueeze(1)).transpose(1, 2).reshape(B, N, D)
        return F.linear(out, p["proj"], p["proj_b"])

    return forward, [c["batch"], N, D], p


# --- timm BottleneckAttn (§9): global MHSA with 2-D relative logits by gathered tables.
def mhsa(c):
    dim, nh, S = c["dim"], c["heads"], c["size"]
    dqk = make_divisible(dim, 8) // nh
    dv = dim // nh
    p = {"qkv": param(2 * nh * dqk + nh * dv, dim, 1, 1), "h": param(2 * S - 1, dqk), "w": param(2 * S - 1, dqk)}
    idx = torch.arange(S)[None, :] - torch.arange(S)[:, None] + S - 1  # (q, k)

    def forward(x):
        B = x.shape[0]
        q, k, v = F.conv2d(x, p["qkv"]).split([nh * dqk, nh * dqk, nh * dv], 1)
        q = q.reshape(B * nh, dqk, S * S).transpose(1, 2)  # (b, L, d)
        k = k.reshape(B * nh, dqk, S * S)
        v = v.reshape(B * nh, dv, S * S).transpose(1, 2)
        qs = q.reshape(B * nh, S, S, dqk)
        rel_w = torch.einsum("byxd,xkd->byxk", qs, p["w"][idx])
        rel_h = torch.einsum("byxd,ykd->byxk", qs, p["h"][idx])
        rel = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(B * nh, S * S, S * S)
        attn = (q @ k * dqk ** -0.5 + rel).softmax(-1)
        return (attn @ v).transpose(1, 2).reshape(B, nh * dv, S, S)

    return forward, [c["batch"], dim, S, S], p


KINDS = {"halo": halo, "neighborhood": neighborhood, "lesa": lesa, "lsag_local": lsag_local,
         "lsag_global": lsag_global, "mhsa": mhsa}


def peak_bytes(run):
    """Most bytes held above the start during run(), from the profiler's raw allocator events."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    stamp = (lambda e: e.start_ns()) if hasattr(torch._C._autograd._KinetoEvent, "start_ns") else (lambda e: e.start_us())
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    held = peak = 0
    for e in sorted(events, key=stamp):  # stable: same-stamp events keep their recorded order
        held += e.nbytes()
        peak = max(peak, held)
    return peak


def bench(case, repeats):
    torch.manual_seed(0)
    forward, shapes, params = KINDS[case["kind"]](case)
    shapes = shapes if isinstance(shapes[0], list) else [shapes]
    inputs = [torch.randn(*s).requires_grad_() for s in shapes]
    leaves = inputs + [t for v in params.values() for t in (v if isinstance(v, tuple) else (v,))]

    def fwd():
        with torch.no_grad():
            forward(*inputs).sum().item()

    def step():
        forward(*inputs).sum().backward()
        for t in leaves:
            t.grad = None

    def timed(fn):
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    return {"name": case["name"], "forward": timed(fwd), "step": timed(step), "peakBytes": peak_bytes(step)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    cases = json.load(sys.stdin)
    out = [bench(c, a.repeats) for c in cases]
    json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": out}, sys.stdout)


if __name__ == "__main__":
    main()
