/**
 * SmallConvNet: the smallest registered model (`small_convnet`), the foundation's smoke test, kept
 * for quick checks of the training path (the main job's model is la_resnet_nano_s2) — two
 * conv-BN-ReLU-maxpool stages and a linear classifier, for 28×28 grey images.
 *
 * Shape: (B, inChannels, H, W) → (B, numClasses), H and W divisible by 4; `forwardFeatures` gives
 * the two stages' maps, (B, width, H/2, W/2) and (B, 2·width, H/4, W/4).
 * Parameters (width 32, 28×28, 10 classes): 50,282.
 */
import { Module } from '../nn/module.js';
import { BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential } from '../nn/index.js';
import { knownOptions, optionNames } from '../nn/layers/validation.js';
import type { Tensor } from '../tensor/tensor.js';

export interface SmallConvNetOptions {
  inChannels?: number;
  numClasses?: number;
  /** Channels of the first stage; the second has twice as many. */
  width?: number;
  /** Input side (square); the classifier's input size depends on it. */
  inputSize?: number;
}

const SMALL_CONV_NET_OPTION_NAMES = optionNames<SmallConvNetOptions>({ inChannels: 1, numClasses: 1, width: 1, inputSize: 1 });

export class SmallConvNet extends Module {
  readonly features: Sequential;
  classifier: Sequential;
  numClasses: number;

  constructor(o: SmallConvNetOptions = {}) {
    super();
    knownOptions('SmallConvNet', o, SMALL_CONV_NET_OPTION_NAMES);
    const { inChannels = 1, numClasses = 10, width = 32, inputSize = 28 } = o;
    this.numClasses = numClasses;
    if (inputSize % 4 !== 0) throw new RangeError(`SmallConvNet: inputSize ${inputSize} must be divisible by 4 (two 2×2 max-pools)`);
    const stage = (cin: number, cout: number) => [
      new Conv2d({ inChannels: cin, outChannels: cout, kernelSize: 3, padding: 1, bias: false }),
      new BatchNorm2d({ numFeatures: cout }),
      new ReLU(),
      new MaxPool2d({ kernelSize: 2 }),
    ];
    this.features = this.register('features', new Sequential(...stage(inChannels, width), ...stage(width, 2 * width)));
    const side = inputSize / 4;
    this.classifier = this.register('classifier', new Sequential(
      new Flatten(),
      new Linear({ inFeatures: 2 * width * side * side, outFeatures: numClasses }),
    ));
  }

  /** The output of each conv-BN-ReLU-maxpool stage, in order. */
  forwardFeatures(x: Tensor): Tensor[] {
    const maps: Tensor[] = [];
    let h = x;
    for (const layer of this.features) {
      h = layer.forward(h);
      if (layer instanceof MaxPool2d) maps.push(h);   // the end of a stage
    }
    return maps;
  }

  /** A fresh last Linear (`classifier.1`) for numClasses ≥ 1 (timm's reset_classifier), the old one disposed. */
  resetClassifier(numClasses: number): void {
    if (!Number.isInteger(numClasses) || numClasses < 1) {
      throw new RangeError(`SmallConvNet.resetClassifier: numClasses must be an integer ≥ 1, got ${numClasses}`);
    }
    const old = this.classifier.at(1) as Linear;
    const fc = new Linear({ inFeatures: old.inFeatures, outFeatures: numClasses });
    this.classifier = this.register('classifier', new Sequential(this.classifier.at(0), fc), { replace: true });
    old.dispose();
    this.numClasses = numClasses;
  }

  forward(x: Tensor): Tensor {
    return this.classifier.forward(this.features.forward(x));
  }
}
