/**
 * Elementwise activations as Modules, after torch.nn's (PyTorch 1.13,
 * torch/nn/modules/activation.py), plus Identity (torch/nn/modules/linear.py). None has
 * parameters or buffers; each keeps the input's shape: input (*) → output (*).
 */
import * as F from '../../ops/functional.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Module } from '../module.js';
import { finiteNumber, knownOptions, oneOf, optionNames } from './validation.js';

/** max(0, x) (torch.nn.ReLU). */
export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return F.relu(x);
  }
}

export interface GELUOptions {
  /** 'none' (default): x·Φ(x) with the exact erf; 'tanh': the tanh approximation. */
  approximate?: 'none' | 'tanh';
}

const GELU_OPTION_NAMES = optionNames<GELUOptions>({ approximate: 1 });

/**
 * Gaussian error linear unit x·Φ(x) (torch.nn.GELU; Hendrycks & Gimpel 2016).
 *
 * Errors: TypeError for an approximate other than 'none' or 'tanh'.
 */
export class GELU extends Module {
  readonly approximate: 'none' | 'tanh';

  constructor(o: GELUOptions = {}) {
    super();
    knownOptions('GELU', o, GELU_OPTION_NAMES);
    this.approximate = oneOf('GELU', 'approximate', o.approximate ?? 'none', ['none', 'tanh'] as const);
  }

  forward(x: Tensor): Tensor {
    return F.gelu(x, { approximate: this.approximate });
  }
}

/** x·sigmoid(x), also called swish (torch.nn.SiLU). */
export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return F.silu(x);
  }
}

/** 1 / (1 + e^−x) (torch.nn.Sigmoid). */
export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return F.sigmoid(x);
  }
}

/** tanh(x) (torch.nn.Tanh). */
export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return F.tanh(x);
  }
}

export interface SoftplusOptions {
  /** Sharpness; default 1. */
  beta?: number;
  /** Above beta·x > threshold the output is x itself, for stability; default 20. */
  threshold?: number;
}

const SOFTPLUS_OPTION_NAMES = optionNames<SoftplusOptions>({ beta: 1, threshold: 1 });

/**
 * log(1 + e^(beta·x)) / beta, linear above the threshold (torch.nn.Softplus).
 *
 * Errors: RangeError for beta = 0 or a non-finite beta or threshold.
 */
export class Softplus extends Module {
  readonly beta: number;
  readonly threshold: number;

  constructor(o: SoftplusOptions = {}) {
    super();
    knownOptions('Softplus', o, SOFTPLUS_OPTION_NAMES);
    this.beta = finiteNumber('Softplus', 'beta', o.beta ?? 1);
    if (this.beta === 0) throw new RangeError('Softplus: beta must be non-zero (it divides the output), got 0');
    this.threshold = finiteNumber('Softplus', 'threshold', o.threshold ?? 20);
  }

  forward(x: Tensor): Tensor {
    return F.softplus(x, { beta: this.beta, threshold: this.threshold });
  }
}

export interface LeakyReLUOptions {
  /** Slope for x < 0; default 0.01. */
  negativeSlope?: number;
}

const LEAKY_RELU_OPTION_NAMES = optionNames<LeakyReLUOptions>({ negativeSlope: 1 });

/**
 * max(0, x) + negativeSlope·min(0, x) (torch.nn.LeakyReLU).
 *
 * Errors: RangeError for a non-finite negativeSlope.
 */
export class LeakyReLU extends Module {
  readonly negativeSlope: number;

  constructor(o: LeakyReLUOptions = {}) {
    super();
    knownOptions('LeakyReLU', o, LEAKY_RELU_OPTION_NAMES);
    this.negativeSlope = finiteNumber('LeakyReLU', 'negativeSlope', o.negativeSlope ?? 0.01);
  }

  forward(x: Tensor): Tensor {
    return F.leakyRelu(x, this.negativeSlope);
  }
}

/** Returns its input unchanged (torch.nn.Identity): a placeholder where a layer is optional. */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}
