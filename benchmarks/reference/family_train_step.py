"""PyTorch reference for `dkc bench model --config tiny-llama|tiny-phi|tinyllama-4l|phi-1_5-4l`.

One training step (forward, backward, AdamW) of transformers' LlamaForCausalLM / PhiForCausalLM with the
shapes dkc's bench uses (Sources/Benchmarks/ModelBench.swift, `familyConfigs`), fp32, on the CPU, random
tokens; median tokens/s over the timed steps after warm-up. Prints one JSON line per shape.

    python benchmarks/reference/family_train_step.py --config tiny-llama --batch 8 --seq 128 --threads 2
"""
import argparse, json, statistics, time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PhiConfig, PhiForCausalLM

SHAPES = {
    "tiny-llama": ("llama", dict(num_hidden_layers=2, num_attention_heads=32, num_key_value_heads=4, hidden_size=128,
                                 intermediate_size=352, vocab_size=2048, max_position_embeddings=256)),
    "tiny-phi": ("phi", dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, hidden_size=64,
                             intermediate_size=256, vocab_size=3039, max_position_embeddings=256, partial_rotary_factor=0.5)),
    "tinyllama-4l": ("llama", dict(num_hidden_layers=4, num_attention_heads=32, num_key_value_heads=4, hidden_size=2048,
                                   intermediate_size=5632, vocab_size=32000, max_position_embeddings=2048)),
    "phi-1_5-4l": ("phi", dict(num_hidden_layers=4, num_attention_heads=32, num_key_value_heads=32, hidden_size=2048,
                               intermediate_size=8192, vocab_size=51200, max_position_embeddings=2048, partial_rotary_factor=0.5)),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, choices=sorted(SHAPES))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1234)
    family, shape = SHAPES[a.config]
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(tie_word_embeddings=False, rms_norm_eps=1e-5, **shape))
    else:
        model = PhiForCausalLM(PhiConfig(tie_word_embeddings=False, layer_norm_eps=1e-5, resid_pdrop=0.0, embd_pdrop=0.0,
                                         attention_dropout=0.0, **shape))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.1)
    tokens = torch.randint(0, shape["vocab_size"], (a.batch, a.seq))
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(dt)
    rates = [a.batch * a.seq / t for t in times]
    print(json.dumps({"bench": "model", "reference": "pytorch", "config": a.config, "batch_size": a.batch, "seq_len": a.seq,
                      "threads": a.threads, "tokens_per_s": statistics.median(rates), "min": min(rates), "max": max(rates),
                      "parameters": sum(p.numel() for p in model.parameters()), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
