// Builds native/ into build/<backend>/vicinity.node against the libtorch that find-libtorch.mjs
// discovers for the backend (VICINITY_BACKEND: default, venv or debian; unset = default). Each
// backend has a directory of its own, so a build against pip's torch 2.x and one against Debian's
// libtorch 1.13 coexist and rebuild incrementally. Never downloads Node headers: --nodedir points
// at the running Node's own.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendName, findLibtorch, LibtorchNotFound } from './find-libtorch.mjs';

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

/** Writes `text` to `file` only when it differs (keeps make's timestamps), via a temp file. */
function writeIfChanged(file, text) {
  if (existsSync(file) && readFileSync(file, 'utf8') === text) return false;
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
  return true;
}

let torch;
try {
  torch = findLibtorch(process.env, backendName());
} catch (e) {
  if (e instanceof LibtorchNotFound) fail(e.message);
  throw e;
}
// libtorch 2.x headers are written for C++20 (torch.utils.cpp_extension compiles with -std=c++20);
// 1.13's for C++17.
torch.cxxStandard = Number(torch.version.split('.')[0]) >= 2 ? 'c++20' : 'c++17';

const buildDir = path.join(root, 'build', torch.backend);
mkdirSync(buildDir, { recursive: true });
// node-gyp reads ./binding.gyp and writes ./build: run it in buildDir with a copy of the project's
// file (a copy, not a link: gyp's Makefile-regeneration step would resolve a link back to the root).
// binding.gyp lists the native sources when node-gyp configures, so a changed file or a new/removed
// .cc file needs a configure (objects already compiled are kept); a changed libtorch, a rebuild.
const sources = ['core', 'kernels', 'distributed']
  .flatMap((d) => readdirSync(path.join(root, 'native', d)).filter((f) => f.endsWith('.cc')).map((f) => `${d}/${f}`))
  .sort().join('\n');
const layoutChanged = [
  writeIfChanged(path.join(buildDir, 'binding.gyp'), readFileSync(path.join(root, 'binding.gyp'), 'utf8')),
  writeIfChanged(path.join(buildDir, 'sources.txt'), sources),
].some(Boolean);
const configChanged = writeIfChanged(path.join(buildDir, 'libtorch.config.json'), JSON.stringify(torch, null, 2));
// Facts `vicinity doctor` reports, compiled in so the addon describes the build it came from.
writeIfChanged(
  path.join(buildDir, 'build_config.h'),
  [
    '// Written by scripts/build-addon.mjs; not tracked.',
    `#define VICINITY_TORCH_VERSION ${JSON.stringify(torch.version)}`,
    `#define VICINITY_TORCH_SOURCE ${JSON.stringify(torch.source)}`,
    `#define VICINITY_TORCH_LABEL ${JSON.stringify(torch.label)}`,
    `#define VICINITY_BACKEND ${JSON.stringify(torch.backend)}`,
    '',
  ].join('\n'),
);
console.log(`vicinity: building the ${torch.backend} addon against ${torch.label} (libtorch ${torch.version}, ${torch.source})`);

const configured = existsSync(path.join(buildDir, 'build/Makefile'));
const steps = configChanged || !configured ? ['rebuild'] : layoutChanged ? ['configure', 'build'] : ['build'];
for (const step of steps) {
  const args = [nodeGypPath(), step, `--nodedir=${nodeDir()}`, ...(step === 'configure' ? [] : ['--jobs=max'])];
  // node-gyp's "gyp info" lines go to stderr; the compiler's warnings and errors still show.
  if (process.env.VICINITY_DEBUG_BUILD) args.push('--debug');
  else args.push('--loglevel=warn');
  const result = spawnSync(process.execPath, args, { cwd: buildDir, stdio: 'inherit' });
  if (result.status !== 0) fail('the addon build failed (see the compiler output above)');
}
