/**
 * The build record scripts/build-addon.mjs writes beside the addon (build/<backend>/
 * libtorch.config.json): which libtorch the loaded addon was built against and the Python whose
 * torch is that same libtorch — the PyTorch that tests and benchmarks compare against.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { addonPath } from './binding.js';

export interface BuildConfig {
  /** default, venv or debian (VICINITY_BACKEND). */
  backend: string;
  /** libtorch version from its headers, e.g. "2.13.0". */
  version: string;
  /** As a person says it: "pip torch 2.13.0 in .venv", "Debian libtorch-dev 1.13.1". */
  label: string;
  /** How it was found: "python torch at …", "Debian libtorch-dev", "LIBTORCH=…". */
  source: string;
  /** The Python whose `import torch` loads this libtorch; null for a bare libtorch directory. */
  python: string | null;
}

/** The record of the loaded addon's build; undefined for a prebuilt addon without one. */
export function buildConfig(): BuildConfig | undefined {
  const file = path.join(path.dirname(addonPath), 'libtorch.config.json');
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as BuildConfig;
}

/**
 * The Python with the PyTorch the addon links: `override` (an environment variable's value) when
 * set, else the build record's, else Debian's /usr/bin/python3 (python3-torch).
 */
export function torchPython(override?: string): string {
  if (override) return override;
  const recorded = buildConfig()?.python;
  return recorded && existsSync(recorded) ? recorded : '/usr/bin/python3';
}
