// The fused operators of the papers (one .cc each), registered as `vicinity::<name>` by
// registration.cc. Each file's header cites its paper equations, the composite path it replaces
// (the tested oracle) and its deviations; src/ops/fused.ts lists them for the layers and for
// analysis/macs.ts.
#pragma once
#include <ATen/ATen.h>
#include <c10/util/string_view.h>

#include <tuple>

namespace vicinity {

// la_normalized_weight.cc: LA Eq. (8) 'normalized' weight Σ_c softplus(key_c)·q_c / (Σ_c softplus(key_c) + eps).
at::Tensor la_normalized_weight(const at::Tensor& q, const at::Tensor& key, int64_t dim, double eps);

// la_offsets.cc: LA Eq. (7) straight-through rounding and locality constraint, per sample.
at::Tensor la_offsets(const at::Tensor& raw, double constraint, bool round);

// la_attention.cc: LA sampling (Eq. 6–7) and aggregation (Eq. 8) in one pass.
at::Tensor la_attention(const at::Tensor& q, const at::Tensor& key, const at::Tensor& value, const at::Tensor& offsets,
                        int64_t kernel_size, c10::string_view mode, double eps);

// window_attention.cc: SASA / neighbourhood-attention window products.
at::Tensor window_qk(const at::Tensor& q, const at::Tensor& key, const at::Tensor& rows, const at::Tensor& cols,
                     int64_t kernel_size, int64_t dilation);
at::Tensor window_av(const at::Tensor& attn, const at::Tensor& value, const at::Tensor& rows, const at::Tensor& cols,
                     int64_t kernel_size, int64_t dilation);

// window_softmax.cc: per-pixel window softmax attention (scale·q·(k + embed) + bias, softmax, ·v) in one pass (NA, SASA).
at::Tensor window_softmax_attention(const at::Tensor& q, const at::Tensor& key, const at::Tensor& value,
                                    const at::Tensor& rows, const at::Tensor& cols,
                                    const c10::optional<at::Tensor>& bias, const c10::optional<at::Tensor>& key_embed,
                                    int64_t kernel_size, int64_t dilation, double scale);

// window_softmax.cc: the same with q, key, value packed as one (B, H, W, 3C) projection (NA's qkv).
at::Tensor window_softmax_attention_qkv(const at::Tensor& qkv, int64_t heads, const at::Tensor& rows,
                                        const at::Tensor& cols, const c10::optional<at::Tensor>& bias,
                                        int64_t kernel_size, int64_t dilation, double scale);

// halo_attention.cc: HaloNet blocked local attention with relative logits.
at::Tensor halo_attention(const at::Tensor& q, const at::Tensor& kv, const at::Tensor& height_rel,
                          const at::Tensor& width_rel, int64_t heads, int64_t block, int64_t halo, int64_t mask_h,
                          int64_t mask_w, double scale, bool scale_pos_embed, bool grouped_kv);
// The same with HaloAttention's kv projection (1×1 conv of x) inside, its ∂kv produced a chunk at a time.
at::Tensor halo_attention_projected(const at::Tensor& q, const at::Tensor& x, const at::Tensor& kv_weight,
                                    const c10::optional<at::Tensor>& kv_bias, const at::Tensor& height_rel,
                                    const at::Tensor& width_rel, int64_t heads, int64_t block, int64_t halo,
                                    int64_t mask_h, int64_t mask_w, double scale, bool scale_pos_embed);

// lsag_variant_attention.cc: LSAG's local attention over the T shift variants (Eq. 2–4, U_kv on the query side).
at::Tensor lsag_variant_attention(const at::Tensor& a, const at::Tensor& z, const c10::optional<at::Tensor>& bias);

// lesa_binary.cc: LESA's binary term (Eq. 1, 3): logits, bn_similarity, softmax, Σ_j P·v and Σ_j P·r^v.
std::tuple<at::Tensor, at::Tensor, at::Tensor> lesa_binary(const at::Tensor& qkv, const at::Tensor& relative,
                                                           const at::Tensor& weight, const at::Tensor& bias,
                                                           const at::Tensor& running_mean,
                                                           const at::Tensor& running_var, int64_t qk_planes,
                                                           bool batch_stats, double eps);

}  // namespace vicinity
