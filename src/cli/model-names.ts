/**
 * Model names and globs as the CLI takes them: the registry's lookups, with errors worded for a
 * command-line user (the `vicinity list-models` command, not the library's listModels() call)
 * and a malformed glob reported as such rather than as a regular-expression error.
 */
import { listModels, modelInfo, UnknownModelError, type ModelInfo } from '../models/registry.js';

/** An unknown model, in CLI words: the nearest names and the command that lists them all. */
export class UnknownModelNameError extends Error {
  constructor(readonly model: string, suggestions: readonly string[]) {
    const hint = suggestions.length ? `did you mean ${suggestions.join(', ')}?` : 'no registered name is close';
    super(`unknown model '${model}'; ${hint} (vicinity list-models lists them, e.g. vicinity list-models 'resnet*')`);
    this.name = 'UnknownModelNameError';
  }
}

/** modelInfo for a name the user typed. Errors: UnknownModelNameError. */
export function cliModelInfo(name: string): ModelInfo {
  try {
    return modelInfo(name);
  } catch (e) {
    if (e instanceof UnknownModelError) throw new UnknownModelNameError(name, e.suggestions);
    throw e;
  }
}

/** The registered names matching a glob (`*`, `?`, `[abc]`, `[!abc]`). Errors: a malformed glob, named. */
export function cliListModels(pattern?: string): string[] {
  try {
    return listModels(pattern);
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    throw new Error(`'${pattern}' is not a valid model pattern: a glob of letters, digits, _, * (any text), ? (one ` +
      "character) and [abc] (one of a, b, c; each [ needs its ]), e.g. 'la_*'");
  }
}
