/**
 * timm's Bring-Your-Own-Attention models (timm/models/byoanet.py, timm 1.0.29) under timm's names,
 * built by ByobNet (../byobnet.ts) from timm's configurations, transcribed below. A timm state dict
 * loads strictly (`loadPretrained(model, 'model.safetensors')`, or a train.py checkpoint) and the
 * logits equal timm's (test/models/timm-byobnet.test.ts; fixtures in test/fixtures/timm/).
 *
 * Parameter counts are timm's at 1,000 classes (measured with timm 1.0.29). `*_256` models hold
 * BottleneckAttn and are fixed-size: build them with `inputSize` for another resolution (the relative
 * tables change shape, so pretrained weights only load at the size they were trained at).
 *
 * `halonet_h1` here is timm's HaloNet-H1; it is the same network as the slides' Table 2 row
 * (8,100,056 parameters) and replaces the vicinity-named one, so one name means one key layout.
 */
import type { ModelEntry, ResolvedModelOptions } from '../registry.js';
import {
  ByobNet, interleaveBlocks, repeatBlocks, type ByoBlockCfg, type ByoModelCfg, type ByobSelfAttnSpec,
} from '../byobnet.js';

const bottle = (d: number, c: number, s: number, gs = 0, br = 0.25): ByoBlockCfg[] => repeatBlocks(d, { type: 'bottle', c, s, gs, br });
const attn = (d: number, c: number, s: number, gs = 0, br = 0.25): ByoBlockCfg[] => repeatBlocks(d, { type: 'self_attn', c, s, gs, br });
const mixed = (d: number, c: number, s: number, every: number | number[] = 1, gs = 0, br = 0.25, selfAttn?: ByobSelfAttnSpec): ByoBlockCfg[] =>
  interleaveBlocks(['bottle', 'self_attn'], d, every, selfAttn ? { c, s, gs, br, selfAttn } : { c, s, gs, br });

const base = { downsample: 'conv1x1', stemChs: 64, numFeatures: 0 } as const;

/** timm's model_cfgs of byoanet.py, for the registered names. */
export const TIMM_BYOANET_CONFIGS: Record<string, ByoModelCfg> = {
  botnet26t: {
    ...base, stages: [bottle(2, 256, 1), bottle(2, 512, 2), mixed(2, 1024, 2), attn(2, 2048, 2)],
    stemType: 'tiered', stemPool: 'maxpool', act: 'relu', fixedInputSize: true, selfAttn: { layer: 'bottleneck' },
  },
  sebotnet33ts: {
    ...base, stages: [bottle(2, 256, 1), mixed(3, 512, 2, [2]), mixed(3, 1024, 2, [2]), attn(2, 1536, 2, 0, 0.333)],
    stemType: 'tiered', stemPool: '', act: 'silu', numFeatures: 1280, attn: { layer: 'se' }, fixedInputSize: true,
    selfAttn: { layer: 'bottleneck' },
  },
  botnet50ts: {
    ...base, stages: [bottle(3, 256, 1), mixed(4, 512, 2, 4), mixed(6, 1024, 2), mixed(3, 2048, 2)],
    stemType: 'tiered', stemPool: 'maxpool', act: 'silu', fixedInputSize: true, selfAttn: { layer: 'bottleneck' },
  },
  halonet_h1: {
    ...base, stages: [attn(3, 64, 1, 0, 1), attn(3, 128, 2, 0, 1), attn(10, 256, 2, 0, 1), attn(3, 512, 2, 0, 1)],
    stemType: '7x7', stemPool: 'maxpool', act: 'relu', selfAttn: { layer: 'halo', blockSize: 8, haloSize: 3 },
  },
  halonet26t: {
    ...base, stages: [bottle(2, 256, 1), bottle(2, 512, 2), mixed(2, 1024, 2), attn(2, 2048, 2)],
    stemType: 'tiered', stemPool: 'maxpool', act: 'relu', selfAttn: { layer: 'halo', blockSize: 8, haloSize: 2 },
  },
  sehalonet33ts: {
    ...base, stages: [bottle(2, 256, 1), mixed(3, 512, 2, [2]), mixed(3, 1024, 2, [2]), attn(2, 1536, 2, 0, 0.333)],
    stemType: 'tiered', stemPool: '', act: 'silu', numFeatures: 1280, attn: { layer: 'se' },
    selfAttn: { layer: 'halo', blockSize: 8, haloSize: 3 },
  },
  halonet50ts: {
    ...base,
    stages: [
      bottle(3, 256, 1), mixed(4, 512, 2, 4, 0, 0.25, { layer: 'halo', blockSize: 8, haloSize: 3, numHeads: 4 }),
      mixed(6, 1024, 2), mixed(3, 2048, 2),
    ],
    stemType: 'tiered', stemPool: 'maxpool', act: 'silu', selfAttn: { layer: 'halo', blockSize: 8, haloSize: 3 },
  },
  eca_halonext26ts: {
    ...base, stages: [bottle(2, 256, 1, 16), bottle(2, 512, 2, 16), mixed(2, 1024, 2, 1, 16), attn(2, 2048, 2, 16)],
    stemType: 'tiered', stemPool: 'maxpool', act: 'silu', attn: { layer: 'eca' },
    selfAttn: { layer: 'halo', blockSize: 8, haloSize: 2, dimHead: 16 },
  },
  haloregnetz_b: {
    stages: [bottle(2, 48, 2, 16, 3), bottle(6, 96, 2, 16, 3), mixed(12, 192, 2, 3, 16, 3), attn(2, 288, 2, 16, 3)],
    downsample: '', stemType: '3x3', stemPool: '', stemChs: 32, numFeatures: 1536, act: 'silu',
    attn: { layer: 'se', rdRatio: 0.25 }, bottleIn: true, linearOut: true,
    selfAttn: { layer: 'halo', blockSize: 7, haloSize: 2, qkRatio: 0.33 },
  },
  halo2botnet50ts: {
    ...base,
    stages: [
      bottle(3, 256, 1), mixed(4, 512, 2, 1, 0, 0.25, { layer: 'halo', haloSize: 3 }),
      mixed(6, 1024, 2, 1, 0, 0.25, { layer: 'halo', haloSize: 3 }), mixed(3, 2048, 2, 1, 0, 0.25, { layer: 'bottleneck' }),
    ],
    stemType: 'tiered', stemPool: '', act: 'silu', fixedInputSize: true,
  },
};

interface Row {
  config: string;
  inputSize: number;
  params: number;
  macs: number;
  description: string;
}

/** Registered name → configuration name (timm's `*_256` variants name the config without the size). */
const TIMM_ENTRY_CONFIG: Record<string, string> = {};

function entry(r: Row): ModelEntry {
  const cfg = TIMM_BYOANET_CONFIGS[r.config];
  return {
    paper: 'timm 1.0.29 byoanet.py (HaloNet: Vaswani et al. 2021; BoTNet: Srinivas et al. 2021)',
    description: r.description, recipe: 'halonet', inputSize: r.inputSize, inChannels: 3, numClasses: 1000,
    fixedInputSize: cfg.fixedInputSize ?? false, params: r.params, macs: r.macs,
    build: (o: ResolvedModelOptions) => new ByobNet(cfg, {
      numClasses: o.numClasses, inChannels: o.inChannels, inputSize: o.inputSize, dropPathRate: o.dropPathRate,
    }),
  };
}

const rows: Record<string, Row> = {
  halonet_h1: {
    config: 'halonet_h1', inputSize: 256, params: 8_100_056, macs: 2_988_232_704,
    description: 'timm HaloNet-H1: 7×7 stem, all-halo blocks (b 8, h 3), c 64–512, depths 3/3/10/3',
  },
  halonet26t: {
    config: 'halonet26t', inputSize: 256, params: 12_480_288, macs: 3_172_810_752,
    description: 'timm HaloNet-26t: tiered stem, bottlenecks, halo (b 8, h 2) in stages 3–4',
  },
  sehalonet33ts: {
    config: 'sehalonet33ts', inputSize: 256, params: 13_691_712, macs: 3_530_416_128,
    description: 'timm SE-HaloNet-33ts: SE bottlenecks, SiLU, halo (b 8, h 3), 1280 final conv',
  },
  halonet50ts: {
    config: 'halonet50ts', inputSize: 256, params: 22_733_280, macs: 5_269_504_000,
    description: 'timm HaloNet-50ts: ResNet-50 layout, SiLU, halo (b 8, h 3) interleaved in stages 2–4',
  },
  eca_halonext26ts: {
    config: 'eca_halonext26ts', inputSize: 256, params: 10_756_885, macs: 2_420_099_968,
    description: 'timm ECA-HaloNeXt-26ts: grouped (16) bottlenecks with ECA, SiLU, halo (b 8, h 2, d 16)',
  },
  halo2botnet50ts_256: {
    config: 'halo2botnet50ts', inputSize: 256, params: 22_635_360, macs: 4_991_369_216,
    description: 'timm Halo2BoTNet-50ts: halo (h 3) in stages 2–3, BottleneckAttn in stage 4; fixed 256 px',
  },
  botnet26t_256: {
    config: 'botnet26t', inputSize: 256, params: 12_488_672, macs: 3_297_394_688,
    description: 'timm BoTNet-26t: tiered stem, BottleneckAttn (MHSA, rel. pos.) in stages 3–4; fixed 256 px',
  },
  sebotnet33ts_256: {
    config: 'sebotnet33ts', inputSize: 256, params: 13_701_984, macs: 3_866_812_416,
    description: 'timm SE-BoTNet-33ts: SE bottlenecks, SiLU, BottleneckAttn, 1280 final conv; fixed 256 px',
  },
  botnet50ts_256: {
    config: 'botnet50ts', inputSize: 256, params: 22_742_688, macs: 5_511_725_056,
    description: 'timm BoTNet-50ts: ResNet-50 layout, SiLU, BottleneckAttn interleaved in stages 2–4; fixed 256 px',
  },
  haloregnetz_b: {
    config: 'haloregnetz_b', inputSize: 224, params: 11_680_072, macs: 1_951_320_000,
    description: 'timm HaloRegNetZ-B: RegNetZ-B (grouped, SE, linear out) with halo (b 7, h 2) blocks',
  },
};

export const timmModels: Record<string, ModelEntry> = Object.fromEntries(Object.entries(rows).map(([name, r]) => {
  TIMM_ENTRY_CONFIG[name] = r.config;
  return [name, entry(r)];
}));

/** timm create_model keyword arguments a `timm.models.<name>` fixture may carry (spec.ctor). */
const CREATE_MODEL_KWARGS = ['num_classes', 'in_chans', 'img_size', 'width_factor', 'drop_path_rate'];

/**
 * `timm.create_model(name, **ctor)` in vicinity: the registered timm model `name` built with timm's
 * keyword arguments (num_classes, in_chans, img_size, and the ByoModelCfg override width_factor).
 *
 * Errors: RangeError for a name this table does not hold; TypeError for a keyword it does not take
 * or a value of the wrong type (the rule of nn/layers/validation.ts).
 */
export function createTimmModel(name: string, ctor: Record<string, unknown> = {}): ByobNet {
  const row = timmModels[name];
  if (!row) throw new RangeError(`'${name}' is not one of timm's models in vicinity; known: ${Object.keys(timmModels).join(', ')}`);
  const unknown = Object.keys(ctor).filter((k) => !CREATE_MODEL_KWARGS.includes(k));
  if (unknown.length) {
    throw new TypeError(`timm.create_model('${name}', ...): vicinity does not take ${unknown.join(', ')}; it takes ${CREATE_MODEL_KWARGS.join(', ')}`);
  }
  const num = (k: string, fallback: number): number => {
    const v = ctor[k] ?? fallback;
    if (typeof v !== 'number') throw new TypeError(`timm.create_model('${name}', ...): ${k} must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const config = TIMM_ENTRY_CONFIG[name];
  const img = ctor.img_size;
  const inputSize = img === undefined ? row.inputSize
    : Array.isArray(img) && img.length === 2 ? [Number(img[0]), Number(img[1])] as [number, number] : num('img_size', row.inputSize);
  return new ByobNet({ ...TIMM_BYOANET_CONFIGS[config], widthFactor: num('width_factor', 1) }, {
    numClasses: num('num_classes', 1000), inChannels: num('in_chans', 3), inputSize, dropPathRate: num('drop_path_rate', 0),
  });
}
