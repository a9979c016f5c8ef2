# The addon: native/core (binding) + native/kernels (the papers' fused operators) +
# native/distributed (c10d process groups, DDP, SyncBatchNorm).
# Built only through scripts/build-addon.mjs, which runs node-gyp in build/<backend>/ (one
# directory per libtorch backend, so the 2.x and 1.13 builds coexist) with this file copied there
# as binding.gyp; <(module_root_dir) is that directory, and paths are relative to it. It holds libtorch.config.json and
# build_config.h, written by build-addon.mjs, and receives vicinity.node.
{
  "targets": [
    {
      "target_name": "vicinity",
      "product_dir": "<(module_root_dir)",
      "sources": [
        "<!@(node -p \"['core', 'kernels', 'distributed'].flatMap(d => require('fs').readdirSync('../../native/' + d).filter(f => f.endsWith('.cc')).map(f => '../../native/' + d + '/' + f)).join(' ')\")"
      ],
      "include_dirs": [
        "<(module_root_dir)",
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node -p \"require('<(module_root_dir)/libtorch.config.json').includeDirs.join(' ')\")",
        "<!@(node ../../native/distributed/nccl-config.cjs <(module_root_dir)/libtorch.config.json include)",
        "../../native/distributed/compat"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "<!(node ../../native/distributed/nccl-config.cjs <(module_root_dir)/libtorch.config.json define)",
        "_GLIBCXX_USE_CXX11_ABI=<!(node -p \"require('<(module_root_dir)/libtorch.config.json').cxx11Abi ? 1 : 0\")"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14", "-std=c++14"],
      "cflags_cc": [
        "-std=<!(node -p \"require('<(module_root_dir)/libtorch.config.json').cxxStandard\")",
        "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-fopenmp"
      ],
      # -fopenmp: at::parallel_for is a header template that runs its range serially unless the
      # including code is compiled with OpenMP (ParallelOpenMP.h), as torch.utils.cpp_extension
      # builds do. Linked the same way, the addon's libgomp.so.1 is the one libtorch already
      # loaded (pip's torch/lib copy has that soname), so setNumThreads governs the kernels too.
      "ldflags": ["-fopenmp"],
      "libraries": [
        "<!@(node -p \"require('<(module_root_dir)/libtorch.config.json').libDirs.map(d => '-L' + d + ' -Wl,-rpath,' + d).join(' ')\")",
        "-Wl,--no-as-needed",
        "<!@(node -p \"require('<(module_root_dir)/libtorch.config.json').cuda ? '-ltorch_cuda -lc10_cuda' : ''\")",
        "-ltorch -ltorch_cpu -lc10",
        "-Wl,--as-needed"
      ]
    }
  ]
}
