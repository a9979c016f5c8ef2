// Finds a libtorch to build the addon against, and the Python whose torch is that same libtorch
// (the tests' PyTorch oracle). A backend names a build (build/<backend>/, see build-addon.mjs):
//
//   default (VICINITY_BACKEND unset), the first of:
//     1. LIBTORCH: a libtorch directory (include/, lib/), as unpacked from pytorch.org's zip;
//     2. TORCH_PYTHON: a Python whose torch to use;
//     3. the project's .venv/bin/python: pip's torch 2.x, installed by scripts/setup.sh (the primary);
//     4. Debian's libtorch-dev (/usr/include, /usr/lib/<triplet>), the fallback; its oracle is
//        Debian's python3-torch at /usr/bin/python3;
//     5. a Python torch: /usr/bin/python3, then python3 on PATH.
//   venv:   only 3.   debian: only 4.
//
// Prints JSON on stdout when run directly; build-addon.mjs imports findLibtorch().
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SUPPORTED = ['1.13', '2.'];
export const BACKENDS = ['default', 'venv', 'debian'];
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const VENV_PYTHON = path.join(root, '.venv/bin/python');
const DEBIAN_PYTHON = '/usr/bin/python3';
const HOW_TO_GET =
  'run `bash scripts/setup.sh` (pip torch 2.x in .venv/), or `apt-get install -y libtorch-dev` (Debian 12), ' +
  'or set TORCH_PYTHON=/path/to/python with torch installed, or unpack libtorch from pytorch.org and set ' +
  'LIBTORCH=/path/to/libtorch';

export class LibtorchNotFound extends Error {}

// 2.x (>= 2.9) keeps the numbers in torch/headeronly/version.h, which torch/version.h includes;
// 1.13 has them in torch/csrc/api/include/torch/version.h itself.
const VERSION_HEADERS = ['torch/headeronly/version.h', 'torch/csrc/api/include/torch/version.h', 'torch/version.h'];

export function versionFromHeaders(includeDirs) {
  for (const dir of includeDirs) {
    for (const rel of VERSION_HEADERS) {
      const file = path.join(dir, rel);
      if (!existsSync(file)) continue;
      const text = readFileSync(file, 'utf8');
      const major = /#define TORCH_VERSION_MAJOR (\d+)/.exec(text)?.[1];
      const minor = /#define TORCH_VERSION_MINOR (\d+)/.exec(text)?.[1];
      const patch = /#define TORCH_VERSION_PATCH (\d+)/.exec(text)?.[1];
      if (major && minor) return `${major}.${minor}.${patch ?? 0}`;
    }
  }
  return undefined;
}

function fromDirectory(dir) {
  const include = path.join(dir, 'include');
  const lib = path.join(dir, 'lib');
  if (!existsSync(path.join(include, 'ATen/ATen.h'))) {
    throw new LibtorchNotFound(`LIBTORCH=${dir} has no include/ATen/ATen.h; ${HOW_TO_GET}`);
  }
  return {
    source: `LIBTORCH=${dir}`,
    label: `libtorch at ${dir}`,
    includeDirs: [include, path.join(include, 'torch/csrc/api/include')],
    libDirs: [lib],
    cxx11Abi: guessAbiFromLib(lib),
    cuda: existsSync(path.join(lib, 'libtorch_cuda.so')),
    python: null,
  };
}

function guessAbiFromLib(lib) {
  // pytorch.org ships both ABIs; the pre-cxx11 build's symbols mention std::basic_string without __cxx11.
  try {
    const out = execFileSync('nm', ['-DC', path.join(lib, 'libc10.so')], { encoding: 'utf8', maxBuffer: 1 << 28 });
    return out.includes('__cxx11');
  } catch {
    return true;
  }
}

const PY_PROBE = [
  'import json, torch, torch.utils.cpp_extension as c',
  'print(json.dumps({"version": torch.__version__, "include": c.include_paths(), "lib": c.library_paths(),',
  ' "abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI), "cuda": torch.version.cuda is not None}))',
].join('\n');

function probePython(python) {
  try {
    const out = execFileSync(python, ['-c', PY_PROBE], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return JSON.parse(out.trim().split('\n').pop());
  } catch {
    return undefined;
  }
}

function fromPython(python, label) {
  const info = probePython(python);
  if (!info) return undefined;
  return {
    source: `python torch at ${python}`,
    label: label(info.version),
    includeDirs: info.include.filter((d) => existsSync(d)),
    libDirs: info.lib,
    cxx11Abi: info.abi,
    cuda: info.cuda,
    python,
    pythonTorch: info.version,
  };
}

function debianPackageVersion(pkg) {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .replace(/\+.*/, '');
  } catch {
    return undefined;
  }
}

function fromDebian() {
  const include = '/usr/include';
  const lib = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu'].find((d) => existsSync(path.join(d, 'libtorch_cpu.so')));
  if (!lib || !existsSync(path.join(include, 'ATen/ATen.h'))) return undefined;
  const includeDirs = [include, path.join(include, 'torch/csrc/api/include')];
  // The oracle: Debian's python3-torch loads this same libtorch_cpu.so.
  const headers = versionFromHeaders(includeDirs);
  const py = probePython(DEBIAN_PYTHON);
  const sameTorch = py && headers && py.version.startsWith(headers.split('.').slice(0, 2).join('.'));
  return {
    source: 'Debian libtorch-dev',
    label: `Debian libtorch-dev ${debianPackageVersion('libtorch-dev') ?? headers}`,
    includeDirs,
    libDirs: [lib],
    cxx11Abi: true,
    cuda: existsSync(path.join(lib, 'libtorch_cuda.so')),
    python: sameTorch ? DEBIAN_PYTHON : null,
    pythonTorch: sameTorch ? py.version : undefined,
  };
}

const venvLabel = (v) => `pip torch ${v.replace(/\+.*/, '')} in .venv`;
const pythonLabel = (python) => (v) => `torch ${v.replace(/\+.*/, '')} of ${python}`;

function candidates(env, backend) {
  if (backend === 'venv') {
    return [() => (existsSync(VENV_PYTHON) ? fromPython(VENV_PYTHON, venvLabel) : undefined)];
  }
  if (backend === 'debian') return [fromDebian];
  return [
    () => (env.LIBTORCH ? fromDirectory(env.LIBTORCH) : undefined),
    () => {
      if (!env.TORCH_PYTHON) return undefined;
      const found = fromPython(env.TORCH_PYTHON, pythonLabel(env.TORCH_PYTHON));
      if (!found) throw new LibtorchNotFound(`TORCH_PYTHON=${env.TORCH_PYTHON} cannot import torch; ${HOW_TO_GET}`);
      return found;
    },
    () => (existsSync(VENV_PYTHON) ? fromPython(VENV_PYTHON, venvLabel) : undefined),
    fromDebian,
    () => fromPython(DEBIAN_PYTHON, pythonLabel(DEBIAN_PYTHON)),
    () => fromPython('python3', pythonLabel('python3')),
  ];
}

/** The backend a build or a run uses: VICINITY_BACKEND, else `default`. */
export function backendName(env = process.env) {
  const name = env.VICINITY_BACKEND || 'default';
  if (!BACKENDS.includes(name)) {
    throw new LibtorchNotFound(`VICINITY_BACKEND=${name} is not a backend; use one of ${BACKENDS.join(', ')}`);
  }
  return name;
}

export function findLibtorch(env = process.env, backend = backendName(env)) {
  let found;
  for (const candidate of candidates(env, backend)) {
    found = candidate();
    if (found) break;
  }
  if (!found) {
    const where = { venv: `no torch in ${VENV_PYTHON}; `, debian: 'Debian libtorch-dev is not installed; ' }[backend] ?? '';
    throw new LibtorchNotFound(`libtorch not found for backend ${backend}: ${where}${HOW_TO_GET}`);
  }
  const version = versionFromHeaders(found.includeDirs);
  if (!version) {
    throw new LibtorchNotFound(`${found.source}: no TORCH_VERSION_MAJOR in torch/headeronly/version.h or torch/version.h; ${HOW_TO_GET}`);
  }
  const majorMinor = version.split('.').slice(0, 2).join('.');
  if (!SUPPORTED.some((s) => (s.endsWith('.') ? majorMinor.startsWith(s) : majorMinor === s))) {
    throw new LibtorchNotFound(`${found.source} is libtorch ${version}; vicinity builds against 1.13 or 2.x; ${HOW_TO_GET}`);
  }
  return { backend, ...found, version };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    console.log(JSON.stringify(findLibtorch(), null, 2));
  } catch (e) {
    console.error(`vicinity: ${e.message}`);
    process.exit(1);
  }
}
