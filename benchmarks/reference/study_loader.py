"""Loads a Llama or Phi model folder into the study's vendored TransformerLens the way its
circuit_discovery.py and notebooks load a checkpoint, offline, on transformers 4 or 5. Shared by
family_eap_bench.py (timing) and family_components.py (the component-analysis check).

    model = load(ref_dir, shims_dir, folder, family)   # family: "llama" or "phi"

- shims_dir: the reference-bench folder holding anchor_shims.py (stubs for packages the study imports but
  never uses on these paths); optional.
- The TransformerLens name is "TinyLlama_v1.1" (it must contain "tinyllama": that selects the study's weight
  conversion) or "phi-1_5"; local_path makes the loader read the folder's config.json.
- transformers 5 keeps Phi's rotary settings in `rope_parameters`; the study's loader reads `rope_theta` and
  `partial_rotary_factor` off the config, so they are exposed there.
"""
import os
import sys
import types

TL_NAMES = {"llama": "TinyLlama_v1.1", "phi": "phi-1_5"}


def _stub(name):
    """An empty package whose every attribute is a do-nothing callable (plotting packages never called here)."""
    module = types.ModuleType(name)
    module.__path__ = []

    def attribute(attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return lambda *a, **k: None
    module.__getattr__ = attribute
    return module


def prepare(ref_dir, shims_dir=None, extra_stubs=()):
    """sys.path and import shims; returns the transformers module."""
    if shims_dir:
        sys.path.insert(0, os.path.abspath(shims_dir))
    try:
        import anchor_shims
        anchor_shims.install(verbose=False)
    except ImportError:
        anchor_shims = None
    for name in extra_stubs:
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = _stub(name)
            parent, _, child = name.rpartition(".")
            if parent in sys.modules:
                setattr(sys.modules[parent], child, sys.modules[name])
    sys.path.insert(0, os.path.abspath(ref_dir))
    import transformers
    from transformers import PhiConfig
    if anchor_shims:
        anchor_shims.fix_transformers()
    for key, default in (("rope_theta", 10000.0), ("partial_rotary_factor", 0.5)):
        try:
            getattr(PhiConfig(), key)
        except AttributeError:
            setattr(PhiConfig, key, property(lambda self, k=key, d=default: (getattr(self, "rope_parameters", None) or {}).get(k, d)))
    return transformers


def load(folder, family):
    """The HookedTransformer of `folder` as the study builds it (call `prepare` first), and the HF model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformer_lens import HookedTransformer
    hf_model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = HookedTransformer.from_pretrained(TL_NAMES[family], device="cpu", fold_ln=False, center_writing_weights=False,
                                              center_unembed=False, hf_model=hf_model, tokenizer=tokenizer, local_path=folder)
    model.cfg.use_split_qkv_input = True
    model.cfg.use_attn_result = True
    model.cfg.use_hook_mlp_in = True
    return model, hf_model
