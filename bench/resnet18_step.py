"""The PyTorch side of bench/resnet18-step.ts: one ResNet-18 (CIFAR stem) training step.

Started by the TypeScript harness as a child process, so both frameworks run in the same machine
run and their rounds can alternate:

    /usr/bin/python3 bench/resnet18_step.py --state DIR --threads N

DIR holds what the harness exported from vicinity: manifest.json ({name: {dtype, shape, offset,
bytes}}) and data.bin, with the network's state dict under its PyTorch keys plus the batch under
`input` and `target`. The process then reads one JSON command per stdin line and answers one
JSON line on stdout:

    {"cmd": "run", "steps": K}   -> {"times": [s, ...], "losses": [loss before each update, ...],
                                     "foreign": [CPU-s used by other processes during each step, ...],
                                     "userS", "sysS", "minorFaults": [this process's, per step]}
    {"cmd": "exit"}              -> exits

The step is the one the harness times in vicinity: zero grads (set to None), forward,
cross-entropy, backward, SGD (momentum 0.9, weight decay 5e-4), loss.item().
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {'float32': torch.float32, 'float64': torch.float64, 'int64': torch.int64, 'int32': torch.int32}


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: two 3x3 conv+BN, 1x1 conv+BN projection when the shape changes."""

    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet18Cifar(nn.Module):
    """3x3 stem (64, stride 1, no max-pool); stages [2,2,2,2] of widths 64/128/256/512."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes = 64
        for i, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            self.add_module(f'layer{i + 1}', nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


CLOCK_TICKS = os.sysconf('SC_CLK_TCK')


def machine_busy_s():
    """CPU seconds the whole machine has spent busy (/proc/stat: all but idle and iowait)."""
    with open('/proc/stat') as f:
        v = [int(t) for t in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / CLOCK_TICKS


def load_state(directory):
    with open(f'{directory}/manifest.json') as f:
        manifest = json.load(f)
    with open(f'{directory}/data.bin', 'rb') as f:
        blob = bytearray(f.read())
    out = {}
    for name, e in manifest.items():
        count = 1
        for d in e['shape']:
            count *= d
        flat = torch.frombuffer(blob, dtype=DTYPES[e['dtype']], count=count, offset=e['offset'])
        out[name] = flat.reshape(e['shape']).clone()
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--state', required=True)
    parser.add_argument('--threads', type=int, required=True)
    parser.add_argument('--lr', type=float, default=0.1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    state = load_state(args.state)
    x, y = state.pop('input'), state.pop('target')
    model = ResNet18Cifar()
    model.load_state_dict(state, strict=True)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    print(json.dumps({
        'ready': True, 'torch': torch.__version__, 'threads': torch.get_num_threads(),
        'parallelInfo': torch.__config__.parallel_info(),
        'parameters': sum(p.numel() for p in model.parameters()), 'clockTicks': CLOCK_TICKS,
    }), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd['cmd'] == 'exit':
            break
        reply = {'times': [], 'losses': [], 'foreign': [], 'userS': [], 'sysS': [], 'minorFaults': []}
        for _ in range(cmd['steps']):
            busy0, own0, r0, t0 = machine_busy_s(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            reply['losses'].append(step())
            reply['times'].append(time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            reply['foreign'].append(max(0.0, machine_busy_s() - busy0 - (time.process_time() - own0)))
            reply['userS'].append(r1.ru_utime - r0.ru_utime)
            reply['sysS'].append(r1.ru_stime - r0.ru_stime)
            reply['minorFaults'].append(r1.ru_minflt - r0.ru_minflt)
        print(json.dumps(reply), flush=True)


if __name__ == '__main__':
    main()
