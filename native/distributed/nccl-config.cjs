// For binding.gyp: compiles NCCL in (VICINITY_WITH_NCCL) when the libtorch has CUDA and nccl.h
// can be found (the libtorch's includes, pip's nvidia-nccl package beside torch, or the system's).
// Usage: node native/distributed/nccl-config.cjs <libtorch.config.json> define|include
const fs = require('fs');
const path = require('path');
const config = require(path.resolve(process.argv[2]));
function ncclInclude() {
  if (!config.cuda) return null;
  const candidates = [...config.includeDirs, '/usr/include', '/usr/local/cuda/include'];
  for (const lib of config.libDirs) candidates.push(path.join(lib, '../../nvidia/nccl/include'));
  return candidates.find((d) => fs.existsSync(path.join(d, 'nccl.h'))) ?? null;
}
const dir = ncclInclude();
const what = process.argv[3];
if (what === 'define') console.log(dir ? 'VICINITY_WITH_NCCL' : 'VICINITY_WITHOUT_NCCL');
else if (what === 'include') console.log(dir ?? '');
