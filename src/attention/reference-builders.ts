/**
 * The contract between a paper operator and the reference implementation it ports: each operator
 * file exports `referenceBuilders`, mapping a reference class (a fixture's `spec.kind`, e.g.
 * `timm.layers.halo_attn.HaloAttn`) to a builder taking that class's constructor arguments as the
 * reference spells them (`spec.ctor`). The type lives here, beside the operators, so that they do
 * not import the verification tools (src/verify) that read the table; see docs/adding-an-operator.md.
 */
import type { Module } from '../nn/module.js';

/** What a reference builder returns: a module with one tensor in and one out (a plain Module); kept as a public name. */
export type ReferenceModule = Module;

/** Reference class name → builder from the reference's constructor arguments. */
export type ReferenceBuilders = Record<string, (ctor: Record<string, unknown>) => ReferenceModule>;
