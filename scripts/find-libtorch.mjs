// Finds a libtorch to build the addon against. Order (architecture.md, "Build"):
//   1. LIBTORCH: a libtorch directory (include/, lib/), as unpacked from pytorch.org's zip;
//   2. a Python torch: TORCH_PYTHON, then /usr/bin/python3, then python3;
//   3. Debian's libtorch-dev paths.
// Prints JSON on stdout when run directly; build-addon.mjs imports findLibtorch().
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const SUPPORTED = ['1.13', '2.'];
const HOW_TO_GET =
  'install it: `apt-get install -y libtorch-dev` (Debian 12), or `pip install torch` and set ' +
  'TORCH_PYTHON=/path/to/python, or unpack libtorch from pytorch.org and set LIBTORCH=/path/to/libtorch';

export class LibtorchNotFound extends Error {}

function versionFromHeaders(includeDirs) {
  // 2.x's torch/version.h only includes torch/headeronly/version.h, which holds the numbers.
  const files = includeDirs.flatMap((dir) => ['torch/csrc/api/include/torch/version.h', 'torch/headeronly/version.h'].map((f) => path.join(dir, f)));
  for (const file of files) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    const major = /TORCH_VERSION_MAJOR (\d+)/.exec(text)?.[1];
    const minor = /TORCH_VERSION_MINOR (\d+)/.exec(text)?.[1];
    const patch = /TORCH_VERSION_PATCH (\d+)/.exec(text)?.[1];
    if (major && minor) return `${major}.${minor}.${patch ?? 0}`;
  }
  return undefined;
}

function fromDirectory(root, source) {
  const include = path.join(root, 'include');
  const lib = path.join(root, 'lib');
  if (!existsSync(path.join(include, 'ATen/ATen.h'))) {
    throw new LibtorchNotFound(`${source}=${root} has no include/ATen/ATen.h; ${HOW_TO_GET}`);
  }
  return {
    source: `${source}=${root}`,
    includeDirs: [include, path.join(include, 'torch/csrc/api/include')],
    libDirs: [lib],
    cxx11Abi: guessAbiFromLib(lib),
    cuda: existsSync(path.join(lib, 'libtorch_cuda.so')),
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

function fromPython(python) {
  let out;
  try {
    out = execFileSync(python, ['-c', PY_PROBE], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
  const info = JSON.parse(out.trim().split('\n').pop());
  return {
    source: `python torch at ${python}`,
    includeDirs: info.include.filter((d) => existsSync(d)),
    libDirs: info.lib,
    cxx11Abi: info.abi,
    cuda: info.cuda,
  };
}

function fromDebian() {
  const include = '/usr/include';
  const lib = '/usr/lib/x86_64-linux-gnu';
  if (!existsSync(path.join(include, 'ATen/ATen.h')) || !existsSync(path.join(lib, 'libtorch_cpu.so'))) return undefined;
  return {
    source: 'Debian libtorch-dev',
    includeDirs: [include, path.join(include, 'torch/csrc/api/include')],
    libDirs: [lib],
    cxx11Abi: true,
    cuda: existsSync(path.join(lib, 'libtorch_cuda.so')),
  };
}

export function findLibtorch(env = process.env) {
  let found;
  if (env.LIBTORCH) found = fromDirectory(env.LIBTORCH, 'LIBTORCH');
  if (!found) {
    const pythons = [env.TORCH_PYTHON, '/usr/bin/python3', 'python3'].filter(Boolean);
    for (const py of pythons) {
      found = fromPython(py);
      if (found) break;
      if (py === env.TORCH_PYTHON) throw new LibtorchNotFound(`TORCH_PYTHON=${py} cannot import torch; ${HOW_TO_GET}`);
    }
  }
  if (!found) found = fromDebian();
  if (!found) throw new LibtorchNotFound(`libtorch not found; ${HOW_TO_GET}`);
  const version = versionFromHeaders(found.includeDirs);
  if (!version) throw new LibtorchNotFound(`${found.source}: cannot read torch/version.h; ${HOW_TO_GET}`);
  const majorMinor = version.split('.').slice(0, 2).join('.');
  if (!SUPPORTED.some((s) => (s.endsWith('.') ? majorMinor.startsWith(s) : majorMinor === s))) {
    throw new LibtorchNotFound(
      `${found.source} is libtorch ${version}; vicinity builds against 1.13 or 2.x; ${HOW_TO_GET}`,
    );
  }
  return { ...found, version };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    console.log(JSON.stringify(findLibtorch(), null, 2));
  } catch (e) {
    console.error(`vicinity: ${e.message}`);
    process.exit(1);
  }
}
