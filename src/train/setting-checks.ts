/**
 * The checks of settings whose values are names (models, recipes, RandAugment strings), and the
 * "did you mean" lookup they and the unknown-key problems share.
 */
import { parseRandAugment } from '../data/transforms/rand-augment.js';
import { listModels, modelInfo, UnknownModelError } from '../models/registry.js';
import { nearestNames } from '../nn/edit-distance.js';
import { RECIPES } from './recipes.js';

export function checkModel(name: string): string | undefined {
  try {
    modelInfo(name);
    return undefined;
  } catch (e) {
    if (!(e instanceof UnknownModelError)) throw e;
    const hint = e.suggestions.length ? `did you mean ${orList(e.suggestions)}?` : `the models are ${listModels().join(', ')}`;
    return `unknown model '${name}'; ${hint} (vicinity list-models lists them)`;
  }
}

export function checkRecipe(name: string): string | undefined {
  if (Object.hasOwn(RECIPES, name)) return undefined;
  const names = Object.keys(RECIPES);
  const near = nearest(name, names);
  return `unknown recipe '${name}'; ${near.length ? `did you mean ${orList(near)}?` : `the recipes are ${names.join(', ')}`}`;
}

/** RandAugment strings are 'rand' then '-' separated options (timm rand_augment_transform); the pipeline parses the rest. */
export function checkRandAugment(s: string): string | undefined {
  if (s === '') return undefined;
  try {
    parseRandAugment(s);   // the parser the loader's workers use, so a bad string fails here, not there
    return undefined;
  } catch (e) {
    return `${e instanceof Error ? e.message : String(e)}; or '' for none`;
  }
}

/** Up to three names within a small edit distance of `query` (case and separators ignored). */
export const nearest = nearestNames;

/** 'a', 'a or b', 'a, b or c'. */
export function orList(items: readonly string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}
