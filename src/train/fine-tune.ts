/**
 * Fine-tuning from pretrained weights, as timm's `create_model(name, pretrained=True, num_classes=N)`
 * plus layer freezing: the checkpoint loads strictly into the model with the checkpoint's own head
 * (so a wrong architecture or file fails loudly), then the head is replaced by a fresh one for N
 * classes (`resetClassifier`, which every registered model has). `freeze` stops gradients in the
 * stem and the first stages.
 *
 *   const raw = await readStateDictFile('halonet26t.pth', { ema: true });
 *   applyPretrained(model, raw, { numClasses: 10, freeze: 2 });
 */
import type { RawTensor } from '../checkpoint/raw-tensor.js';
import { rawToTensor } from '../checkpoint/tensor-io.js';
import type { Module, StateDict } from '../nn/module.js';

/** A model whose classifier can be replaced (every registered model). */
export type ResettableClassifier = Module & { resetClassifier(numClasses: number): void };

export function hasResetClassifier(model: Module): model is ResettableClassifier {
  return typeof (model as unknown as { resetClassifier?: unknown }).resetClassifier === 'function';
}

export interface ApplyPretrainedOptions {
  /** Classes of the new head. */
  numClasses: number;
  /** Freeze the stem and this many stages (0 or undefined: nothing frozen). */
  freeze?: number;
  /** Names the weights in error messages. */
  source?: string;
}

export interface ApplyPretrainedReport {
  /** Classes of the checkpoint's head. */
  pretrainedClasses: number;
  /** The keys of the head that was replaced (e.g. head.fc.weight, head.fc.bias). */
  classifierKeys: string[];
  /** Parameters frozen (requiresGrad false). */
  frozenParameters: number;
}

function shapes(model: Module): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, t] of model.stateDict()) {
    out.set(k, t.shape.join(','));
    t.dispose();
  }
  return out;
}

/**
 * Loads `raw` (a state dict) into `model` and gives it a new head for options.numClasses; see the
 * file header.
 *
 * Errors: TypeError for a model without resetClassifier; RangeError naming the keys when the
 * checkpoint holds no classifier of this model; StateDictError (missing/unexpected/mis-shaped keys)
 * when the checkpoint is of another architecture or input size; freezeStages' errors.
 */
export function applyPretrained(model: Module, raw: Map<string, RawTensor>, o: ApplyPretrainedOptions): ApplyPretrainedReport {
  if (!hasResetClassifier(model)) {
    throw new TypeError(`${model.constructor.name} has no resetClassifier(numClasses); it cannot take a new head for fine-tuning`);
  }
  const source = o.source ?? 'the pretrained weights';
  // The classifier's keys are those whose shape follows the class count.
  const before = shapes(model);
  model.resetClassifier(o.numClasses + 1);
  const after = shapes(model);
  const classifierKeys = [...after.keys()].filter((k) => before.get(k) !== after.get(k));
  const weightKey = classifierKeys.find((k) => k.endsWith('weight')) ?? classifierKeys[0];
  const head = weightKey === undefined ? undefined : raw.get(weightKey);
  if (head === undefined) {
    throw new RangeError(`${source} holds no '${weightKey ?? 'classifier'}' (this model's classifier); ` +
      `is it a checkpoint of another model? Its first keys: ${[...raw.keys()].slice(0, 5).join(', ')}`);
  }
  const pretrainedClasses = head.shape[0];
  model.resetClassifier(pretrainedClasses);
  const tensors: StateDict = new Map();
  try {
    for (const [name, t] of raw) tensors.set(name, rawToTensor(t));
    model.loadStateDict(tensors, { strict: true });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  if (pretrainedClasses !== o.numClasses) model.resetClassifier(o.numClasses);
  const frozenParameters = o.freeze ? freezeStages(model, o.freeze) : 0;
  return { pretrainedClasses, classifierKeys, frozenParameters };
}

/** The stage a parameter belongs to: `stages.i` / `layers.i` (timm, LSAG) or `layer{i+1}` (torchvision); null outside stages. */
function stageIndex(name: string): number | null {
  const timm = /^(?:stages|layers)\.(\d+)\./.exec(name);
  if (timm) return Number(timm[1]);
  const tv = /^layer(\d+)\./.exec(name);
  return tv ? Number(tv[1]) - 1 : null;
}

/**
 * Freezes (requiresGrad false) the stem — every parameter registered before the first stage — and
 * stages 0 … n − 1. Their batch-norm layers still normalise with batch statistics in training, as
 * in timm's train.py; the running statistics move, the weights do not. Returns the number of
 * parameters (elements) frozen.
 *
 * Errors: RangeError for n not an integer in [1, stages], or a model without recognisable stages.
 */
export function freezeStages(model: Module, n: number): number {
  const named = [...model.namedParameters()];
  const stages = new Set(named.map(([k]) => stageIndex(k)).filter((i): i is number => i !== null));
  if (stages.size === 0) {
    throw new RangeError(`freeze: ${model.constructor.name} has no stages (stages.i, layers.i or layer{i}) to freeze; train without --freeze`);
  }
  if (!Number.isInteger(n) || n < 1 || n > stages.size) {
    throw new RangeError(`freeze: the number of stages to freeze must be an integer in [1, ${stages.size}], got ${n}`);
  }
  let frozen = 0;
  let inStem = true;
  for (const [name, p] of named) {
    const stage = stageIndex(name);
    if (stage !== null) inStem = false;
    if ((stage === null && inStem) || (stage !== null && stage < n)) {
      p.requiresGrad = false;
      frozen += p.numel;
    }
  }
  return frozen;
}
