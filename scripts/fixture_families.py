"""The tiny fixture models that scripts/make_fixtures.py builds: one spec per fixture model.

Each spec: "config" (kwargs for AutoConfig.for_model), "traits" (in words, what the fixture exercises), "layouts"
((layout, dtype) pairs to save), and optional keys read by make_fixtures.py / fixture_checks.py:
  family         HF model_type when the key is not one (e.g. "qwen2_moe-swa")
  shard_hub      save the hub layout in several shards
  router_suffix  parameter-name endings that get ROUTER_STD (default: "mlp.gate.weight")
  std_override   {name ending: std} for >= 2-D parameters drawn with another std
  bias_std       {name ending: std} for 1-D parameters / buffers drawn as std * N(0, 1) (zero-initialised ones too)
  router         how routing selects experts, for the margin check: "softmax" (default), "topk-logits" (top-k of
                 logits, softmax over the k), "sigmoid-groups" (DeepSeek-V3: sigmoid + correction bias, groups)
  hub            per-expert naming of the hub layout: "mixtral", "granitemoe", or default (gate/up/down_proj)
  legacy         config.json rewrites of the hub (and mxfp4) layout: {"rope_key": "type"|"rope_type",
                 "drop": [keys], "add": {key: value}}
Layouts: "fused" (transformers-5 names), "hub" (Hub names), "mxfp4" (GPT-OSS experts quantized as released).
Seeds follow the order of FAMILIES (seed + index): append new fixtures at the end to keep the others' bytes.
"""

WEIGHT_STD = 0.08  # every >= 2-D parameter
ROUTER_STD = 0.25  # router weights: larger, so top-k choices are decisive (wide margins)

# One spec per fixture model. "traits" says, in words, which config fields the fixture exercises.
FAMILIES = {
    "mixtral": dict(
        config=dict(
            vocab_size=211, hidden_size=56, intermediate_size=36, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2,
            sliding_window=16, max_position_embeddings=128, rms_norm_eps=4e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 20000.0},
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        ),
        traits=[
            "GQA 4 heads / 2 kv heads, head_dim derived = hidden/heads = 14",
            "8 experts, top-2, softmax over all experts then renormalise the top-2 (always, no flag)",
            "sliding_window=16 < case length 29 and < prompt+40 generated: the window changes results",
            "rope_theta=20000, rms_norm_eps=4e-6, untied lm_head",
        ],
        layouts=[("fused", "f32"), ("hub", "f32")],
        shard_hub=True,
    ),
    "qwen2_moe": dict(
        config=dict(
            vocab_size=223, hidden_size=40, intermediate_size=48, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, num_experts=6, num_experts_per_tok=3,
            moe_intermediate_size=20, shared_expert_intermediate_size=28, decoder_sparse_step=1,
            mlp_only_layers=[1], norm_topk_prob=False, qkv_bias=True, use_sliding_window=False,
            max_position_embeddings=128, rms_norm_eps=2e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 5000.0},
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        ),
        traits=[
            "q/k/v projections with (random) bias, o_proj without",
            "6 experts, top-3, norm_topk_prob=False (weights are raw softmax probabilities)",
            "shared expert (intermediate 28 != moe_intermediate 20) scaled by sigmoid(shared_expert_gate(x))",
            "layer 1 dense via mlp_only_layers=[1], dense MLP uses intermediate_size=48",
            "rope_theta=5000, rms_norm_eps=2e-5, untied lm_head",
        ],
        layouts=[("fused", "f32"), ("hub", "f32")],
    ),
    "qwen2_moe-swa": dict(
        family="qwen2_moe",
        config=dict(
            vocab_size=223, hidden_size=40, intermediate_size=48, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, num_experts=6, num_experts_per_tok=2,
            moe_intermediate_size=20, shared_expert_intermediate_size=28, decoder_sparse_step=2,
            mlp_only_layers=[], norm_topk_prob=True, qkv_bias=True, use_sliding_window=True,
            sliding_window=6, max_window_layers=3, max_position_embeddings=128, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
        ),
        traits=[
            "decoder_sparse_step=2: MoE only in layers 1 and 3 ((i+1) % 2 == 0), layers 0 and 2 dense",
            "use_sliding_window=True, sliding_window=6, max_window_layers=3: layer_types computed as "
            "'sliding_attention' iff (i+1) % 2 == 1 and i < max_window_layers -> layers 0 and 2 slide",
            "norm_topk_prob=True, top-2 of 6, tie_word_embeddings=True (no lm_head.weight in the file)",
        ],
        layouts=[("fused", "f32")],
    ),
    "qwen3_moe": dict(
        config=dict(
            vocab_size=227, hidden_size=32, intermediate_size=40, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=12, num_experts=8,
            num_experts_per_tok=3, moe_intermediate_size=24, decoder_sparse_step=1, mlp_only_layers=[2],
            norm_topk_prob=True, attention_bias=False, use_sliding_window=False,
            max_position_embeddings=128, rms_norm_eps=3e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        ),
        traits=[
            "explicit head_dim=12 != hidden/heads=8 (q_proj 32->48, o_proj 48->32)",
            "q_norm/k_norm: RMSNorm over each head's head_dim, applied before RoPE",
            "8 experts, top-3, norm_topk_prob=True; no attention bias",
            "layer 2 dense via mlp_only_layers=[2] (intermediate_size=40)",
            "untied lm_head, rope_theta=5e5, rms_norm_eps=3e-6",
        ],
        layouts=[("fused", "f32"), ("hub", "f32"), ("hub", "bf16")],
    ),
    "olmoe": dict(
        config=dict(
            vocab_size=199, hidden_size=36, intermediate_size=20, num_hidden_layers=2,
            num_attention_heads=6, num_key_value_heads=3, num_experts=10, num_experts_per_tok=3,
            norm_topk_prob=False, clip_qkv=1.0, attention_bias=True, max_position_embeddings=128,
            rms_norm_eps=2e-6, rope_parameters={"rope_type": "default", "rope_theta": 20000.0},
            tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        ),
        traits=[
            "q_norm over the whole q projection (hidden=36), k_norm over kv_heads*head_dim=18, before reshape",
            "clip_qkv=1.0 clamps q, k (after the norms) and v, before RoPE; it clips (see clip_fraction)",
            "attention_bias=True: q/k/v/o projections all with (random) bias",
            "GQA 6 heads / 3 kv heads, 10 experts, top-3, norm_topk_prob=False",
            "rope_theta=20000, rms_norm_eps=2e-6, untied lm_head",
        ],
        layouts=[("fused", "f32"), ("hub", "f32"), ("fused", "f16")],
    ),
    "deepseek_v3": dict(
        config=dict(
            vocab_size=233, hidden_size=44, intermediate_size=56, moe_intermediate_size=20, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=4, q_lora_rank=22, kv_lora_rank=18, qk_nope_head_dim=10,
            qk_rope_head_dim=6, v_head_dim=14, n_routed_experts=12, n_group=4, topk_group=2, num_experts_per_tok=3,
            n_shared_experts=2, routed_scaling_factor=2.5, norm_topk_prob=True, first_k_dense_replace=1,
            max_position_embeddings=163840, rms_norm_eps=3e-6,
            rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0,
                             "original_max_position_embeddings": 4096, "beta_fast": 32.0, "beta_slow": 1.0,
                             "mscale": 1.0, "mscale_all_dim": 0.8},
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        ),
        traits=[
            "MLA: q_lora_rank=22 (q_a_proj -> q_a_layernorm -> q_b_proj), kv_lora_rank=18 (kv_a_proj_with_mqa -> "
            "kv_a_layernorm on the first 18 -> kv_b_proj), qk_nope_head_dim=10, qk_rope_head_dim=6, v_head_dim=14",
            "rope_interleave=True (the model default): rope dims of q and k taken as interleaved pairs "
            "(x0,x1),(x2,x3)..",
            "YaRN: factor 40, original_max_position_embeddings 4096, beta_fast 32, beta_slow 1, truncate (default) "
            "true, mscale 1.0 != mscale_all_dim 0.8: cos/sin times get_mscale(40,1)/get_mscale(40,0.8), softmax scale "
            "qk_head_dim^-0.5 * get_mscale(40, 0.8)^2; rope over qk_rope_head_dim=6",
            "12 routed experts in n_group=4 groups of 3, topk_group=2, top-3; sigmoid scores + random non-zero "
            "e_score_correction_bias for selection only (group score = sum of its top-2 biased scores)",
            "norm_topk_prob=True, routed_scaling_factor=2.5, n_shared_experts=2 (shared intermediate 2*20=40)",
            "first_k_dense_replace=1: layer 0 dense (intermediate_size 56), layers 1-2 MoE; untied; rms_norm_eps 3e-6",
        ],
        layouts=[("fused", "f32"), ("hub", "f32")],
        bias_std={"e_score_correction_bias": 0.1},
        router="sigmoid-groups",
        legacy={"rope_key": "type", "drop": ["rope_interleave", "head_dim", "qk_head_dim"],
                "add": {"topk_method": "noaux_tc", "scoring_func": "sigmoid"}},
    ),
    "deepseek_v3-noqlora": dict(
        family="deepseek_v3",
        config=dict(
            vocab_size=233, hidden_size=36, intermediate_size=44, moe_intermediate_size=16, num_hidden_layers=3,
            num_attention_heads=3, num_key_value_heads=3, q_lora_rank=None, kv_lora_rank=14, qk_nope_head_dim=8,
            qk_rope_head_dim=4, v_head_dim=10, n_routed_experts=8, n_group=2, topk_group=1, num_experts_per_tok=2,
            n_shared_experts=1, routed_scaling_factor=1.7, norm_topk_prob=False, first_k_dense_replace=1,
            max_position_embeddings=128, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 50000.0},
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        ),
        traits=[
            "q_lora_rank=null: a plain q_proj (hidden -> heads*(8+4)); kv_lora_rank=14, rope dim 4, v_head_dim 10",
            "default RoPE (rope_theta 5e4, no YaRN: softmax scale qk_head_dim^-0.5), rope_interleave=True (default)",
            "8 experts in 2 groups of 4, topk_group=1 (all picks from one group), top-2, norm_topk_prob=False "
            "(weights are the raw sigmoid scores times routed_scaling_factor=1.7), one shared expert",
            "first_k_dense_replace=1, random non-zero e_score_correction_bias",
        ],
        layouts=[("fused", "f32")],
        bias_std={"e_score_correction_bias": 0.1},
        router="sigmoid-groups",
    ),
    "gpt_oss": dict(
        config=dict(
            vocab_size=241, hidden_size=96, intermediate_size=64, head_dim=12, num_hidden_layers=4,
            num_attention_heads=6, num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=3,
            sliding_window=5, attention_bias=True, max_position_embeddings=131072, rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0, "beta_fast": 32.0,
                             "beta_slow": 1.0, "truncate": False, "original_max_position_embeddings": 4096},
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        ),
        traits=[
            "layer_types default: sliding, full, sliding, full; sliding_window=5 < case length 7 and 29",
            "attention sinks: one random logit per head (N(0,1)) joins each softmax row and is dropped after",
            "q/k/v/o biases; explicit head_dim=12 (6 heads * 12 = 72 != hidden 96), GQA 6/2",
            "YaRN: factor 32, original_max_position_embeddings 4096, beta_fast 32, beta_slow 1, truncate=false "
            "(fractional ramp bounds), attention_factor 0.1 ln 32 + 1 on cos/sin; rotate-half (not interleaved) RoPE",
            "router with bias: top-3 of 8 logits, softmax over the 3",
            "experts: gate_up_proj [E, H, 2F] (x @ W, gate = even columns, up = odd), down_proj [E, F, H], with "
            "biases (gate_up bias 0.5 N(0,1), router bias 0.25 N(0,1)); clamped SwiGLU (alpha 1.702, limit 7): "
            "expert gate_up weights std 0.37 so the clamps bite (see clamp_fraction)",
        ],
        layouts=[("fused", "f32"), ("mxfp4", "f32")],
        router_suffix=("mlp.router.weight",),
        std_override={"experts.gate_up_proj": 0.37},
        bias_std={"sinks": 1.0, "mlp.router.bias": 0.25, "experts.gate_up_proj_bias": 0.5},
        router="topk-logits",
        legacy={"rope_key": "rope_type", "add": {"swiglu_limit": 7.0, "experts_per_token": 3,
                                                "initial_context_length": 4096}},
    ),
    "granitemoe": dict(
        config=dict(
            vocab_size=229, hidden_size=40, intermediate_size=24, num_hidden_layers=3, num_attention_heads=5,
            num_key_value_heads=1, num_local_experts=7, num_experts_per_tok=2, embedding_multiplier=0.2,
            attention_multiplier=0.11, residual_multiplier=3.0, logits_scaling=6.0, max_position_embeddings=128,
            rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        ),
        traits=[
            "embedding_multiplier=0.2 (embeddings times 0.2), attention_multiplier=0.11 is the softmax scale "
            "(not head_dim^-0.5 = 0.354), residual_multiplier=3.0 on both branch outputs, logits divided by 6 "
            "(real Granite has 12 / 1/64 / 0.22 / 6; with random tied weights a large embedding multiplier makes "
            "greedy decoding repeat the last token forever, so the roles are reversed here)",
            "tied embeddings (no lm_head.weight in the file); GQA 5 heads / 1 kv head, head_dim 8",
            "7 experts, top-2 of the router logits then softmax over the 2 (router without bias)",
            "hub layout: block_sparse_moe.input_linear.weight [E, 2F, H] (gate rows first), output_linear.weight "
            "[E, H, F], router.layer.weight [E, H]",
        ],
        layouts=[("fused", "f32"), ("hub", "f32")],
        router_suffix=("block_sparse_moe.router.weight",),
        router="topk-logits",
        hub="granitemoe",
    ),
}
