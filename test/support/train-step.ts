/** One SGD training step on random 28×28 data, reporting what a "trains a step" test asserts. */
import type { Module } from '../../src/nn/module.js';
import * as F from '../../src/ops/functional.js';
import { SGD, type SGDOptions } from '../../src/optim/sgd.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { randint, randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';

export interface TrainStepResult {
  loss: number;
  /** Every parameter received a gradient. */
  allGradients: boolean;
  /** Parameters whose values changed, of `total`. */
  moved: number;
  total: number;
}

export function trainOneStep(
  model: Module,
  o: { inChannels: number; numClasses: number; side?: number; sgd?: Partial<SGDOptions> },
): TrainStepResult {
  const side = o.side ?? 28;
  model.train();
  const params = model.parameters();
  const before = noGrad(() => params.map((p) => p.clone().keep()));
  const optimizer = new SGD(params, { lr: 0.1, momentum: 0.9, ...o.sgd });
  try {
    const loss = tidy(() => {
      const x = randn([4, o.inChannels, side, side], { seed: 2 });
      const y = randint(0, o.numClasses, [4], { seed: 3 });
      const l = F.crossEntropy(model.forward(x), y);
      optimizer.zeroGrad();
      l.backward();
      return l.item() as number;
    });
    const allGradients = params.every((p) => p.grad !== null);
    tidy(() => optimizer.step());
    const moved = tidy(() => params.filter((p, i) => !p.equal(before[i])).length);
    return { loss, allGradients, moved, total: params.length };
  } finally {
    before.forEach((b) => b.dispose());
    optimizer.dispose();
  }
}
