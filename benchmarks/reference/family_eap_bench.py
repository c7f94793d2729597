"""The study's EAP-IG for `dkc bench discover --config tiny-llama|tiny-phi|tinyllama-4l|phi-1_5-4l`.

Times the study's own attribution code (its vendored TransformerLens and `eap` package, from an export of
its repository) on a randomly initialised Llama or Phi model of the shape dkc's bench uses (SHAPES of
family_train_step.py, the same folder), loaded the way the study's circuit_discovery.py loads a checkpoint
(study_loader.py: the TransformerLens name must contain "tinyllama", which selects the study's weight
conversion, 4 KV heads repeated 8 times, so only 32 query heads with 4 KV heads load). The folder is a
save_pretrained of the random model plus the tokenizer files of --tokenizer-dir (the fixture model folder
whose tokenizer.json dkc's bench reads too); the 4-layer slices have a larger vocabulary than that
tokenizer, which only means some embedding rows are never read.

Prompts: a JSON-lines file of the study's circuit data (clean_subject, corrupted_subject, clean_label_idx,
corrupted_label_idx), task city. `dkc bench discover --config NAME --write-prompts FILE` writes dkc's own.

Timed: attribute(model, Graph.from_model(model), dataloader, partial(logit_diff, loss=True, mean=True,
prob=False), method="EAP-IG", ig_steps=5) after one untimed warm-up call on one batch; JSON lines out.

    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    python benchmarks/reference/family_eap_bench.py --config tiny-llama --ref-dir /tmp/ref_b \\
        --prompts prompts.jsonl --threads 2 --batch-sizes 16
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import study_loader  # noqa: E402
from family_train_step import SHAPES  # noqa: E402
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "README.md")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, choices=sorted(SHAPES))
    ap.add_argument("--ref-dir", required=True, help="the study's code: folder holding transformer_lens/ and eap/")
    ap.add_argument("--prompts", required=True, help="JSON lines of circuit samples (task city)")
    ap.add_argument("--tokenizer-dir", default=None, help="tokenizer folder (default Tests/Fixtures/<family>/model)")
    ap.add_argument("--shims-dir", default=None, help="folder of anchor_shims.py (the reference-bench set-up)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=None, help="use the first n prompts (default all)")
    ap.add_argument("--batch-sizes", default="16,64")
    ap.add_argument("--ig-steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    family, shape = SHAPES[a.config]
    tok_dir = a.tokenizer_dir or os.path.join(ROOT, "Tests", "Fixtures", family, "model")
    study_loader.prepare(a.ref_dir, a.shims_dir)
    import torch
    torch.set_num_threads(a.threads)
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM, PhiConfig, PhiForCausalLM
    from eap.attribute import attribute
    from eap.dataset import EAPDataset
    from eap.graph import Graph
    from eap.metrics import logit_diff

    t0 = time.perf_counter()
    torch.manual_seed(1234)
    if family == "llama":
        hf = LlamaForCausalLM(LlamaConfig(tie_word_embeddings=False, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, **shape))
    else:
        hf = PhiForCausalLM(PhiConfig(tie_word_embeddings=False, layer_norm_eps=1e-5, resid_pdrop=0.0, embd_pdrop=0.0,
                                      attention_dropout=0.0, bos_token_id=3000, eos_token_id=3000, **shape))
    folder = tempfile.mkdtemp(prefix=f"family_eap_{a.config}_")
    hf.save_pretrained(folder)
    # Every tokenizer file (transformers 4 reloads Phi's tokenizer the slow way: vocab.json, merges.txt, added_tokens.json).
    for f in os.listdir(tok_dir):
        if f not in MODEL_FILES and os.path.isfile(os.path.join(tok_dir, f)):
            shutil.copy(os.path.join(tok_dir, f), folder)
    del hf
    model, hf_model = study_loader.load(folder, family)
    load_s = time.perf_counter() - t0
    with torch.no_grad():
        toks = model.to_tokens(["Ada Lovelace lives in the city of"], prepend_bos=True)
        diff = (model(toks).float() - hf_model(toks).logits.float()).abs().max().item()
    del hf_model
    shutil.rmtree(folder, ignore_errors=True)

    data = [json.loads(line) for line in open(a.prompts) if line.strip()]
    data = data[: a.n] if a.n else data
    env = {"torch": torch.__version__, "transformers": transformers.__version__, "threads": torch.get_num_threads()}
    g = Graph.from_model(model)
    print(json.dumps({"bench": "eap_setup", "config": a.config, "load_s": load_s, "n_edges": len(g.edges),
                      "n_forward": g.n_forward, "n_backward": g.n_backward, "tl_vs_hf_max_abs_logit_diff": diff,
                      "n_samples": len(data), **env}), flush=True)
    metric = partial(logit_diff, loss=True, mean=True, prob=False)
    for bs in [int(x) for x in a.batch_sizes.split(",")]:
        attribute(model, Graph.from_model(model), EAPDataset(data=data[:bs], task="city").to_dataloader(batch_size=bs),
                  metric, method="EAP-IG", ig_steps=a.ig_steps, quiet=True)
        times = []
        for _ in range(a.repeats):
            g = Graph.from_model(model)
            loader = EAPDataset(data=data, task="city").to_dataloader(batch_size=bs)
            t = time.perf_counter()
            attribute(model, g, loader, metric, method="EAP-IG", ig_steps=a.ig_steps, quiet=True)
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        print(json.dumps({"bench": "eap_attribute", "reference": "study", "config": a.config, "method": "EAP-IG",
                          "batch_size": bs, "ig_steps": a.ig_steps, "n_samples": len(data), "repeats": a.repeats,
                          "wall_s": {"min": min(times), "median": med, "max": max(times)},
                          "samples_per_s_median": len(data) / med,
                          "peak_rss_mib_so_far": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **env}), flush=True)


if __name__ == "__main__":
    main()
