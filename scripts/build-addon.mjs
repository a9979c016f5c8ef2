// Builds native/ into build/Release/vicinity.node against the libtorch that find-libtorch.mjs
// discovers. Never downloads Node headers: --nodedir points at the running Node's own.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLibtorch, LibtorchNotFound } from './find-libtorch.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function nodeGypPath() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  ];
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {}
  const found = candidates.find((c) => c && existsSync(c));
  if (!found) fail('node-gyp not found; it ships with npm: reinstall npm or `npm i -g node-gyp`');
  return found;
}

function nodeDir() {
  // Node's own headers: <prefix>/include/node/node_api.h.
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (existsSync(path.join(prefix, 'include/node/node_api.h'))) return prefix;
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  fail(`Node headers not found under ${prefix}/include/node; install your distribution's nodejs headers`);
}

function fail(message) {
  console.error(`vicinity: ${message}`);
  process.exit(1);
}

let torch;
try {
  torch = findLibtorch();
} catch (e) {
  if (e instanceof LibtorchNotFound) fail(e.message);
  throw e;
}
const configFile = path.join(root, 'native/libtorch.config.json');
const config = JSON.stringify(torch, null, 2);
const unchanged = existsSync(configFile) && readFileSync(configFile, 'utf8') === config;
writeFileSync(configFile, config);
// Facts `vicinity doctor` reports, compiled in so the addon describes the build it came from.
const header = [
  '// Written by scripts/build-addon.mjs; not tracked.',
  `#define VICINITY_TORCH_VERSION ${JSON.stringify(torch.version)}`,
  `#define VICINITY_TORCH_SOURCE ${JSON.stringify(torch.source)}`,
  '',
].join('\n');
const headerFile = path.join(root, 'native/build_config.h');
if (!existsSync(headerFile) || readFileSync(headerFile, 'utf8') !== header) writeFileSync(headerFile, header);
console.log(`vicinity: building the addon against libtorch ${torch.version} (${torch.source})`);

const incremental = unchanged && existsSync(path.join(root, 'build/Makefile'));
const args = [nodeGypPath(), incremental ? 'build' : 'rebuild', `--nodedir=${nodeDir()}`, '--jobs=max'];
if (process.env.VICINITY_DEBUG_BUILD) args.push('--debug');
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (result.status !== 0) fail('the addon build failed (see the compiler output above)');
