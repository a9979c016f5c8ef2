/**
 * Config files: YAML or JSON, flat mappings of the settings' keys (settings.ts), read and
 * validated (config-validation.ts), and the merged config printed back as YAML (`--print-config`).
 * Relative paths are taken from the current directory, like the flags' (and timm's). Recipe
 * settings left out mean "the recipe's value" (recipes.ts).
 */
import { readFile } from 'node:fs/promises';
import YAML from 'yaml';
import { ConfigError, validateConfig } from './config-validation.js';
import { TRAIN_SETTINGS } from './settings.js';
import type { RecipeSettings, TrainConfig } from './train-config.js';

/**
 * Reads a YAML or JSON config file and validates it (errors are labelled with the file's path).
 * JSON is chosen by a `.json` extension, or by content starting with `{` for other names; YAML
 * otherwise. Syntax errors report `file:line:column`.
 */
export async function loadConfigFile(file: string): Promise<Partial<TrainConfig>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [`cannot read the config file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`]);
  }
  return validateConfig(parseConfigText(text, file), file);
}

/** Parses config text as JSON or YAML (see loadConfigFile), without validating it. */
export function parseConfigText(text: string, label: string): unknown {
  const json = label.endsWith('.json') || (!/\.ya?ml$/.test(label) && text.trimStart().startsWith('{'));
  return json ? parseJson(text, label) : parseYaml(text, label);
}

function parseJson(text: string, label: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const message = (e as Error).message;
    const at = /at position (\d+)/.exec(message);
    const where = at ? lineColumn(text, Number(at[1])) : undefined;
    const reason = message.replace(/ in JSON at position \d+.*$/s, '');
    throw new ConfigError(where ? `${label}:${where.line}:${where.col}` : label, [`JSON syntax error: ${reason}`]);
  }
}

function parseYaml(text: string, label: string): unknown {
  try {
    return YAML.parse(text);
  } catch (e) {
    if (!(e instanceof YAML.YAMLError)) throw e;
    const pos = e.linePos?.[0];
    // The library appends ' at line L, column C:' and a caret excerpt; keep the excerpt, move the place to the front.
    const [reason, excerpt = ''] = e.message.split(/ at line \d+, column \d+:\n?/);
    const place = pos ? `${label}:${pos.line}:${pos.col}` : label;
    throw new ConfigError(place, [`YAML syntax error: ${reason}${excerpt.trimEnd() ? `\n${excerpt.trimEnd()}` : ''}`]);
  }
}

function lineColumn(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, col: before[before.length - 1].length + 1 };
}

/**
 * The config as YAML, in table order, loadable again with `--config`. Recipe settings that are
 * unset appear as comments with the recipe's value when `recipe` is given.
 */
export function formatConfigYaml(config: Partial<TrainConfig>, recipe?: { name: string; settings: Partial<RecipeSettings> }): string {
  const lines: string[] = [];
  let group = '';
  for (const spec of TRAIN_SETTINGS) {
    if (spec.group !== group) {
      group = spec.group;
      lines.push(group === 'run' ? '# run' : `# recipe${recipe ? ` ${recipe.name}` : ''}: commented values are the recipe's`);
    }
    const value = config[spec.key];
    const fromRecipe = recipe?.settings[spec.key as keyof RecipeSettings];
    if (value !== undefined) lines.push(`${spec.key}: ${YAML.stringify(value).trimEnd()}`);
    else if (fromRecipe !== undefined) lines.push(`# ${spec.key}: ${YAML.stringify(fromRecipe).trimEnd()}`);
  }
  return `${lines.join('\n')}\n`;
}
