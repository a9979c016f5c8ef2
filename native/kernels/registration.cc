// The one TORCH_LIBRARY(vicinity) block: every fused operator's schema, bound to its CPU
// implementation (declared in kernels.h). The TypeScript side reaches them through the generated
// op wrappers (tools/gen-ops/op-list.txt) and chooses fused vs composite by src/ops/fused.ts.
// Each implementation is an autograd Function with a hand-written backward, so it is registered
// as a catch-all kernel (it handles autograd itself, as the composite ops it replaces do).
#include <torch/library.h>

#include "kernels.h"

TORCH_LIBRARY(vicinity, m) {
  m.def("la_normalized_weight(Tensor q, Tensor key, int dim, float eps=1e-06) -> Tensor",
        &vicinity::la_normalized_weight);
  m.def("la_offsets(Tensor raw, float constraint, bool round=True) -> Tensor", &vicinity::la_offsets);
  m.def("la_attention(Tensor q, Tensor key, Tensor value, Tensor offsets, int kernel_size, str mode, "
        "float eps=1e-06) -> Tensor",
        &vicinity::la_attention);
  m.def("window_qk(Tensor q, Tensor key, Tensor rows, Tensor cols, int kernel_size, int dilation=1) -> Tensor",
        &vicinity::window_qk);
  m.def("window_av(Tensor attn, Tensor value, Tensor rows, Tensor cols, int kernel_size, int dilation=1) -> Tensor",
        &vicinity::window_av);
  m.def("window_softmax_attention(Tensor q, Tensor key, Tensor value, Tensor rows, Tensor cols, Tensor? bias, "
        "Tensor? key_embed, int kernel_size, int dilation=1, float scale=1.0) -> Tensor",
        &vicinity::window_softmax_attention);
  m.def("window_softmax_attention_qkv(Tensor qkv, int heads, Tensor rows, Tensor cols, Tensor? bias, int kernel_size, "
        "int dilation=1, float scale=1.0) -> Tensor",
        &vicinity::window_softmax_attention_qkv);
  m.def("halo_attention(Tensor q, Tensor kv, Tensor height_rel, Tensor width_rel, int heads, int block, int halo, "
        "int mask_h, int mask_w, float scale, bool scale_pos_embed=False, bool grouped_kv=False) -> Tensor",
        &vicinity::halo_attention);
  m.def("halo_attention_projected(Tensor q, Tensor x, Tensor kv_weight, Tensor? kv_bias, Tensor height_rel, "
        "Tensor width_rel, int heads, int block, int halo, int mask_h, int mask_w, float scale, "
        "bool scale_pos_embed=False) -> Tensor",
        &vicinity::halo_attention_projected);
  m.def("lsag_variant_attention(Tensor a, Tensor z, Tensor? bias) -> Tensor", &vicinity::lsag_variant_attention);
  m.def("lesa_binary(Tensor qkv, Tensor relative, Tensor weight, Tensor bias, Tensor running_mean, "
        "Tensor running_var, int qk_planes, bool batch_stats, float eps) -> (Tensor, Tensor, Tensor)",
        &vicinity::lesa_binary);
}
