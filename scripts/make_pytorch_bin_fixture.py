"""Write a tiny random-weight BERT in both weight formats, for the test that PyTorch
checkpoints (`pytorch_model.bin`, read by the `pytorch-reader` crate) load to exactly the
tensors of the same weights saved as safetensors.

    python scripts/make_pytorch_bin_fixture.py   (needs torch and safetensors)

Writes fixtures/encoders/bert-tiny-bin/: config.json, model.safetensors,
pytorch_model.bin (ZIP, PyTorch >= 1.6) and pytorch_model_legacy.bin (the pre-1.6 stream).
One Linear weight is saved as a transposed (non-contiguous) view, as some checkpoints do.
"""
import json
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "encoders", "bert-tiny-bin")
H, I, V, P, L = 16, 32, 30, 16, 1
torch.manual_seed(7)
sd = {}
def t(*shape):
    return torch.randn(*shape) * 0.1
sd["embeddings.word_embeddings.weight"] = t(V, H)
sd["embeddings.position_embeddings.weight"] = t(P, H)
sd["embeddings.token_type_embeddings.weight"] = t(2, H)
sd["embeddings.LayerNorm.weight"] = 1 + t(H)
sd["embeddings.LayerNorm.bias"] = t(H)
for l in range(L):
    p = f"encoder.layer.{l}."
    for n in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"]:
        sd[p + n + ".weight"] = t(H, H)
        sd[p + n + ".bias"] = t(H)
    sd[p + "attention.output.LayerNorm.weight"] = 1 + t(H)
    sd[p + "attention.output.LayerNorm.bias"] = t(H)
    sd[p + "intermediate.dense.weight"] = t(I, H)
    sd[p + "intermediate.dense.bias"] = t(I)
    sd[p + "output.dense.weight"] = t(H, I)
    sd[p + "output.dense.bias"] = t(H)
    sd[p + "output.LayerNorm.weight"] = 1 + t(H)
    sd[p + "output.LayerNorm.bias"] = t(H)
sd["pooler.dense.weight"] = t(H, H)
sd["pooler.dense.bias"] = t(H)
os.makedirs(OUT, exist_ok=True)
save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(OUT, "model.safetensors"))
binary = dict(sd)
# a transposed view: the bytes on disk are those of the transpose
binary["encoder.layer.0.intermediate.dense.weight"] = sd["encoder.layer.0.intermediate.dense.weight"].t().contiguous().t()
torch.save(binary, os.path.join(OUT, "pytorch_model.bin"))
torch.save(binary, os.path.join(OUT, "pytorch_model_legacy.bin"), _use_new_zipfile_serialization=False)
config = {"model_type": "bert", "vocab_size": V, "hidden_size": H, "num_hidden_layers": L, "num_attention_heads": 2,
          "intermediate_size": I, "max_position_embeddings": P, "type_vocab_size": 2, "hidden_act": "gelu",
          "layer_norm_eps": 1e-12, "pad_token_id": 0}
with open(os.path.join(OUT, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
print("wrote", OUT)
