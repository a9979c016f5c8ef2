# The addon: native/core (binding) + native/kernels (the papers' fused operators).
# libtorch paths come from native/libtorch.config.json, written by scripts/build-addon.mjs.
{
  "variables": {
    "torch_config": "<(module_root_dir)/native/libtorch.config.json"
  },
  "targets": [
    {
      "target_name": "vicinity",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native/core').filter(f => f.endsWith('.cc')).map(f => 'native/core/' + f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('native/kernels').filter(f => f.endsWith('.cc')).map(f => 'native/kernels/' + f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('native/distributed').filter(f => f.endsWith('.cc')).map(f => 'native/distributed/' + f).join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node -p \"require('<(torch_config)').includeDirs.join(' ')\")",
        "<!@(node native/distributed/nccl-config.cjs include)",
        "native/distributed/compat"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "<!(node native/distributed/nccl-config.cjs define)",
        "_GLIBCXX_USE_CXX11_ABI=<!(node -p \"require('<(torch_config)').cxx11Abi ? 1 : 0\")"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14", "-std=c++14"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "libraries": [
        "<!@(node -p \"require('<(torch_config)').libDirs.map(d => '-L' + d + ' -Wl,-rpath,' + d).join(' ')\")",
        "-Wl,--no-as-needed",
        "<!@(node -p \"require('<(torch_config)').cuda ? '-ltorch_cuda -lc10_cuda' : ''\")",
        "-ltorch -ltorch_cpu -lc10",
        "-Wl,--as-needed"
      ]
    }
  ]
}
