/**
 * The `vicinity train` flags: every setting of the table (src/train/settings.ts) registered on a
 * commander Command with the table's help, and the table's flags picked out of commander's
 * parsed options. Commander stays in src/cli; the training code only knows the table.
 */
import { Option, type Command } from 'commander';
import { BY_KEY, FLAG_ALIASES, TRAIN_SETTINGS, defaultTrainConfig, type SettingSpec, type SettingType, type TrainDefaults } from '../train/settings.js';

/** Placeholder shown after each flag in help texts. */
const PLACEHOLDER: Record<SettingType, string> = {
  int: '<n>', number: '<x>', bool: '', string: '<text>', choice: '<name>', path: '<path>',
};

/** `<n>`, or short choice lists themselves: `<cpu|cuda>` (long ones go in the help text). */
function placeholder(spec: SettingSpec): string {
  if (spec.valueName) return spec.valueName;
  return spec.choices && spec.choices.join('|').length <= 20 ? `<${spec.choices.join('|')}>` : PLACEHOLDER[spec.type];
}

/**
 * Registers every setting of the table as a flag of `command`, with the table's help; boolean
 * settings get `--x` and `--no-x`. No flag has a commander default, so an unset flag is
 * undefined and does not override the config file (defaults are listed in the help instead).
 */
export function addTrainOptions(command: Command): Command {
  const defaults = defaultTrainConfig();
  for (const spec of TRAIN_SETTINGS) {
    const heading = spec.group === 'run' ? 'Run options:' : "Recipe options (default: the recipe's value):";
    const shown = spec.key === 'out' ? 'runs/<model>-<dataset>' : defaults[spec.key as keyof TrainDefaults];
    const listed = spec.choices && placeholder(spec) === PLACEHOLDER.choice ? `: ${spec.choices.join(', ')}` : '';
    const help = `${spec.help}${listed}${spec.group === 'run' && shown !== undefined ? ` (default: ${shown})` : ''}`;
    if (spec.type === 'bool') {
      command.addOption(new Option(spec.flag, help).helpGroup(heading));
      command.addOption(new Option(`--no-${spec.flag.slice(2)}`, `set ${spec.key} to false`).helpGroup(heading));
      continue;
    }
    // Values are checked by validateConfig, not commander, so that one error lists every problem.
    command.addOption(new Option(`${spec.flag} ${placeholder(spec)}`, help).helpGroup(heading));
  }
  for (const alias of Object.values(FLAG_ALIASES)) command.addOption(new Option(`${alias.flag} <value>`).hideHelp());
  return command;
}

/** The table's flags among commander's parsed options (others, e.g. --config, are left out). */
export function flagValues(options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options)) {
    if (value !== undefined && (BY_KEY.has(name) || Object.hasOwn(FLAG_ALIASES, name))) out[name] = value;
  }
  return out;
}
