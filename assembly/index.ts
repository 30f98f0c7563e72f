// The kernels module: every export here is a kernel the JS backend calls (src/backend/wasm/).
// Pointers are byte addresses in the one shared memory; the memory belongs to JS, and nothing here
// allocates or keeps state, so any number of instances (one per thread) can share it.
export { matmul_f32, matmul_f16, matmul_bf16, matmul_q8_0, matmul_q4_0, round_f16, round_bf16, quantize_q8, pack_x2 } from './matmul';
export { matmul_q4_1, matmul_q5_0, matmul_q5_1, q8_1_sums, q4_1_to_f32, q5_0_to_f32, q5_1_to_f32 } from './matmul-legacy';
export { matmul_q4_k, matmul_q5_k, matmul_q6_k, quantize_q8_k, q4_k_to_f32, q5_k_to_f32, q6_k_to_f32 } from './matmul-k';
export { attention, attention_scratch_bytes } from './attention';
export { rmsnorm, rope, softmax, swiglu, gelu, add, mul, f32_to_f16, f16_to_f32, bf16_to_f32, q8_0_to_f32, q4_0_to_f32 } from './elementwise';
export { f32_to_q8_0 } from './kv-q8';
export { layernorm, add_rows } from './elementwise';
export { transpose, sum_rows, norm_weight_grad, norm_backward, gelu_backward, swiglu_backward, cross_entropy, get_rows_backward, dropout, sum_squares, scale, attention_train, attention_backward } from './train';
export { quantize_q4_k, quantize_q5_k, quantize_q6_k, quantize_q8_0, quantize_q4_0, quantize_scratch_bytes } from './quantize';
