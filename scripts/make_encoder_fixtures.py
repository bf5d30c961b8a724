#!/usr/bin/env python3
"""Generate the random-weight encoder fixtures of `fixtures/encoders/` (and `fixtures/preprocess/`).

Tiny models with fixed seeds, built with the reference implementations (torchvision's ResNet,
Hugging Face `ViTModel` and `CLIPModel`), saved with their reference key names, together with
reference outputs for fixed inputs; plus image-preprocessing references (Pillow / torchvision /
transformers' Pillow-backed `CLIPImageProcessorPil`) for two synthetic PNG images. The Rust
test `crates/mmfuse-models/tests/parity_random.rs` (and `mmfuse-data`'s `preprocess` tests)
read only the committed outputs: CI does not need torch.

Folders written (each `config.json` + `model.safetensors` + `expected.safetensors`):
- `resnet-bottleneck-tiny/`: torchvision ResNet, Bottleneck blocks, layers [1, 2, 1, 1], width 8, 10 classes.
- `resnet-basic-tiny/`: torchvision ResNet, BasicBlocks, layers [2, 1, 1, 1], width 4, 7 classes.
- `vit-tiny/`: HF ViTModel, hidden 32, 2 layers, 4 heads, image 32, patch 8 (with pooler).
- `clip-tiny/`: HF CLIPModel, text hidden 32 / 2 layers / vocab 1000 with a CLIP-style byte-level
  BPE `tokenizer.json` trained here, vision hidden 32 / patch 8 / image 32, projection 16.
- `preprocess/`: `input_0.png` (320×260), `input_1.png` (150×150), the reference u8 outputs of
  each preset as PNG (`<preset>_<i>.png`, 224×224 RGB) and `expected.safetensors` with each
  preset's u8 → f32 normalisation table `levels_<preset>` [3, 256] (checked here to reproduce the
  reference pipelines' `pixel_values` exactly).

Batch norms get random running statistics and affine parameters, and every weight is re-drawn
with a spread large enough that the outputs are O(1) (HF's default init would make most layers
near-identities).

Usage: python scripts/make_encoder_fixtures.py [--out DIR]   (torch, torchvision, transformers,
tokenizers, safetensors, pillow, numpy)
"""

import argparse
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torchvision
import torchvision.transforms as T
from PIL import Image
from safetensors.torch import save_file
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "fixtures", "encoders")


def save_tensors(path, tensors):
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


# --------------------------------------------------------------------------------------------
# ResNet
# --------------------------------------------------------------------------------------------


class TinyResNet(ResNet):
    """torchvision's ResNet with a configurable base width (torchvision hard-codes 64)."""

    def __init__(self, block, layers, width, num_classes):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def randomize_bn(model, g):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=g) + 0.5
            m.bias.data = torch.randn(c, generator=g) * 0.2
            m.running_mean.data = torch.randn(c, generator=g) * 0.3
            m.running_var.data = torch.rand(c, generator=g) * 1.5 + 0.5
            m.num_batches_tracked.fill_(100)


def check_resnet_layout():
    """With width 64 the tiny builder gives exactly torchvision's resnet18/resnet50 keys and shapes."""
    for ctor, block, layers in [(torchvision.models.resnet18, BasicBlock, [2, 2, 2, 2]), (torchvision.models.resnet50, Bottleneck, [3, 4, 6, 3])]:
        ref = {k: tuple(v.shape) for k, v in ctor().state_dict().items()}
        ours = {k: tuple(v.shape) for k, v in TinyResNet(block, layers, 64, 1000).state_dict().items()}
        assert ref == ours, f"TinyResNet(width=64) differs from {ctor.__name__}"


def make_resnet(out, name, block, layers, width, num_classes, seed):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = TinyResNet(block, layers, width, num_classes)
    randomize_bn(model, g)
    model.eval()
    x = torch.randn(2, 3, 40, 56, generator=g)
    with torch.no_grad():
        features = model.features(x)
        logits = model(x)
        assert torch.allclose(logits, model.fc(torch.flatten(model.avgpool(features), 1)))
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    save_tensors(os.path.join(d, "model.safetensors"), model.state_dict())
    write_json(
        os.path.join(d, "config.json"),
        {"block": "bottleneck" if block is Bottleneck else "basic", "layers": layers, "width": width, "num_classes": num_classes},
    )
    save_tensors(os.path.join(d, "expected.safetensors"), {"pixel_values": x, "features": features, "logits": logits})
    print(f"{name}: features {tuple(features.shape)} |max| {features.abs().max():.3f}, logits {tuple(logits.shape)} |max| {logits.abs().max():.3f}")


# --------------------------------------------------------------------------------------------
# Transformers: re-draw the weights
# --------------------------------------------------------------------------------------------


def randomize_transformer(model, g, std=0.15):
    for name, p in model.named_parameters():
        if "layernorm" in name.lower() or "layer_norm" in name or "layrnorm" in name:
            p.data = (torch.rand(p.shape, generator=g) + 0.5) if name.endswith("weight") else torch.randn(p.shape, generator=g) * 0.1
        elif name.endswith("logit_scale"):
            p.data = torch.tensor(math.log(20.0))
        elif p.dim() >= 2 and "embed" not in name and "token" not in name:
            fan_in = p[0].numel()
            p.data = torch.randn(p.shape, generator=g) / math.sqrt(fan_in)
        else:
            p.data = torch.randn(p.shape, generator=g) * (0.5 if p.dim() >= 1 and ("embed" in name or "token" in name) else std)


def make_vit(out, seed):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        hidden_act="gelu",
        image_size=32,
        patch_size=8,
        num_channels=3,
        qkv_bias=True,
        layer_norm_eps=1e-12,
        attn_implementation="eager",
    )
    model = ViTModel(config, add_pooling_layer=True)
    randomize_transformer(model, g)
    model.eval()
    x = torch.randn(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        o = model(pixel_values=x)
    d = os.path.join(out, "vit-tiny")
    model.save_pretrained(d)
    save_tensors(os.path.join(d, "expected.safetensors"), {"pixel_values": x, "last_hidden_state": o.last_hidden_state, "pooler_output": o.pooler_output})
    print(f"vit-tiny: last_hidden_state {tuple(o.last_hidden_state.shape)} |max| {o.last_hidden_state.abs().max():.3f}")


# --------------------------------------------------------------------------------------------
# CLIP
# --------------------------------------------------------------------------------------------

CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""

CORPUS = """
A photo of a cat sitting on a red sofa next to the window.
A photo of a dog playing fetch in the park with two children.
A diagram of the solar system showing the planets and their moons.
A painting of a lighthouse on a rocky coast during a storm at night.
Two people riding bicycles along the river on a sunny afternoon.
A close-up photograph of a bowl of fresh fruit: apples, pears and grapes.
The quick brown fox jumps over the lazy dog; the dog doesn't mind.
An aerial view of a city with tall buildings, bridges and busy streets.
A black and white portrait of an old man wearing a hat and glasses.
A screenshot of a computer program with code, menus and buttons.
A group of friends having dinner at a restaurant, laughing and talking.
A mountain landscape covered with snow under a clear blue sky.
A cartoon drawing of a smiling sun, a rainbow and three clouds.
A train arriving at the station while passengers wait on the platform.
A plate of pasta with tomato sauce, basil and grated cheese.
A small boat floating on a calm lake surrounded by green trees.
It's a beautiful day; we're going to the beach and they'll meet us there.
I've seen 12 birds, 7 cats and 3 horses in the field in 2024!
A map of Europe with countries, capitals and rivers marked in blue.
A chart comparing the sales of four products over twelve months.
Photo of a kitchen with wooden cabinets, a stove, a sink and a fridge.
Children playing football on the grass in front of their school.
A woman reading a book in a library full of old wooden shelves.
A sports car driving fast on a highway through the desert.
Flowers in a garden: roses, tulips, daisies and sunflowers in bloom.
A herd of elephants walking across the savanna at sunset.
Someone's hand holding a smartphone showing a photo of a puppy.
A firework display over the harbour on new year's eve.
An illustration of a robot, a rocket and a planet with rings.
Sarcasm: oh great, another rainy monday, exactly what I wanted.
"""


def bytes_to_unicode():
    """GPT-2/CLIP's reversible byte → printable unicode map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def clip_pipeline(tok):
    from tokenizers import Regex, normalizers, pre_tokenizers

    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )


def learn_merges(words, n_tokens):
    """Plain BPE training (Sennrich et al.) on `words` (symbol tuple → count): repeatedly merge
    the most frequent adjacent pair (ties: the smallest pair), until `n_tokens` new tokens exist.
    Deterministic, unlike `tokenizers`' trainer whose tie order depends on hashing."""
    from collections import Counter

    merges, seen = [], set()
    while len(seen) < n_tokens:
        pairs = Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        seen.add(best[0] + best[1])
        merged = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + c
        words = merged
    return merges


def make_clip_tokenizer(vocab_size):
    """A CLIP-style byte-level BPE built as OpenAI's is: vocab = the 256 byte symbols + the same
    with `</w>` + one token per merge + `<|startoftext|>`, `<|endoftext|>` (ids vocab_size-2,
    vocab_size-1), with merges learned on CORPUS; pipeline as in openai/clip-vit-base-patch32's
    tokenizer.json (NFC, whitespace collapse, lowercase, CLIP's split regex, byte-level BPE with
    `</w>` word ends; `RobertaProcessing` adding the specials)."""
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, processors

    probe = Tokenizer(models.BPE())
    clip_pipeline(probe)
    counts = Counter()
    for line in CORPUS.strip().splitlines():
        for word, _ in probe.pre_tokenizer.pre_tokenize_str(probe.normalizer.normalize_str(line)):
            counts[tuple(word[:-1]) + (word[-1] + "</w>",)] += 1
    base = list(bytes_to_unicode().values())
    vocab = base + [b + "</w>" for b in base]
    merges = learn_merges(counts, vocab_size - len(vocab) - 2)
    for a, b in merges:
        if a + b not in vocab:
            vocab.append(a + b)
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(set(vocab)) == len(vocab) == vocab_size, f"vocab of {len(vocab)} tokens (corpus too small?)"
    ids = {v: i for i, v in enumerate(vocab)}
    tok = Tokenizer(models.BPE(vocab=ids, merges=merges, unk_token="<|endoftext|>", continuing_subword_prefix="", end_of_word_suffix="</w>", fuse_unk=False))
    clip_pipeline(tok)
    tok.add_special_tokens(["<|startoftext|>", "<|endoftext|>"])
    bos, eos = ids["<|startoftext|>"], ids["<|endoftext|>"]
    tok.post_processor = processors.RobertaProcessing(("<|endoftext|>", eos), ("<|startoftext|>", bos), trim_offsets=False, add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok, bos, eos


CLIP_TEXTS = ["a photo of a cat", "A DIAGRAM of two  dogs playing fetch, in 2024!"]


def make_clip(out, seed):
    from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast

    vocab_size = 1000
    tok, bos, eos = make_clip_tokenizer(vocab_size)
    d = os.path.join(out, "clip-tiny")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    # the ids the reference tokenizer (transformers, loading the saved tokenizer.json) gives
    hf_tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"), pad_token="<|endoftext|>")
    enc = hf_tok(CLIP_TEXTS, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert (ids[:, 0] == bos).all() and all(ids[i, mask[i].sum() - 1] == eos for i in range(len(CLIP_TEXTS)))
    print("clip-tiny tokens:", [hf_tok.convert_ids_to_tokens(r[m.bool()]) for r, m in zip(ids, mask)])

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=32,
            bos_token_id=bos,
            eos_token_id=eos,
            pad_token_id=eos,
        ),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8),
        projection_dim=16,
        attn_implementation="eager",
    )
    model = CLIPModel(config)
    randomize_transformer(model, g)
    model.eval()
    pixels = torch.randn(2, 3, 32, 32, generator=g)
    # raw ids without EOS: the legacy rule (eos_token_id == 2) pools at the largest id, the
    # current one at position 0 (argmax of an all-false row)
    raw_ids = torch.tensor([[5, 17, 400, 952, 3, 88], [12, 990, 5, 990, 600, 1]])
    with torch.no_grad():
        o = model(input_ids=ids, attention_mask=mask, pixel_values=pixels)
        text_hidden = model.text_model(input_ids=ids, attention_mask=mask).last_hidden_state
        vision_hidden = model.vision_model(pixel_values=pixels).last_hidden_state
        raw_eos = model.get_text_features(input_ids=raw_ids)
        # (transformers 5 nests CLIPTextTransformer inside CLIPTextModel: set it wherever it is read)
        pooling = [m for m in model.modules() if hasattr(m, "eos_token_id") and not isinstance(getattr(m, "eos_token_id"), nn.Module)]
        assert pooling
        for m in pooling:
            m.eos_token_id = 2
        raw_legacy = model.get_text_features(input_ids=raw_ids)
        for m in pooling:
            m.eos_token_id = eos
    text_embeds = model.text_projection(model.text_model(input_ids=ids, attention_mask=mask).pooler_output).detach()
    image_embeds = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output).detach()
    assert torch.allclose(o.logits_per_image, model.logit_scale.exp() * (image_embeds / image_embeds.norm(dim=-1, keepdim=True)) @ (text_embeds / text_embeds.norm(dim=-1, keepdim=True)).t(), atol=1e-5)
    raw_eos = raw_eos.pooler_output if hasattr(raw_eos, "pooler_output") else raw_eos
    raw_legacy = raw_legacy.pooler_output if hasattr(raw_legacy, "pooler_output") else raw_legacy
    assert not torch.allclose(raw_eos, raw_legacy)
    model.save_pretrained(d)
    save_tensors(
        os.path.join(d, "expected.safetensors"),
        {
            "input_ids": ids,
            "attention_mask": mask,
            "pixel_values": pixels,
            "text_last_hidden_state": text_hidden,
            "vision_last_hidden_state": vision_hidden,
            "text_embeds": text_embeds,
            "image_embeds": image_embeds,
            "logits_per_image": o.logits_per_image,
            "raw_input_ids": raw_ids,
            "raw_text_embeds": raw_eos,
            "raw_text_embeds_legacy": raw_legacy,
        },
    )
    write_json(os.path.join(d, "texts.json"), {"texts": CLIP_TEXTS})
    print(f"clip-tiny: ids {tuple(ids.shape)}, text_embeds |max| {text_embeds.abs().max():.3f}, image_embeds |max| {image_embeds.abs().max():.3f}")


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------


def synthetic_image(w, h, seed):
    """Smooth gradients, hard-edged shapes and a small noisy patch (exercises clipping of the
    bicubic overshoot) — compresses well as PNG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), 128 + 100 * np.sin(x / 9.0 + y / 13.0)], -1)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(8, min(w, h) / 3)
        color = rng.integers(0, 256, 3)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = color
    x0, y0 = int(w * 0.6), int(h * 0.2)
    img[y0 : y0 + 24, x0 : x0 + 24] = rng.integers(0, 256, (24, 24, 3))
    img[h // 2 : h // 2 + 2, :] = [255, 255, 255]
    img[:, w // 3] = [0, 0, 0]
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), "RGB")


def make_preprocess(out):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    d = os.path.join(out, "..", "preprocess")
    os.makedirs(d, exist_ok=True)
    images = [synthetic_image(320, 260, 1), synthetic_image(150, 150, 2)]
    for i, im in enumerate(images):
        im.save(os.path.join(d, f"input_{i}.png"), optimize=True)
    images = [Image.open(os.path.join(d, f"input_{i}.png")).convert("RGB") for i in range(len(images))]

    imagenet_mean, imagenet_std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    tv = {
        "imagenet_eval": (T.Compose([T.Resize(256), T.CenterCrop(224)]), T.Compose([T.ToTensor(), T.Normalize(imagenet_mean, imagenet_std)])),
        "muse": (T.Resize((224, 224)), T.Compose([T.ToTensor(), T.Normalize(imagenet_mean, imagenet_std)])),
    }
    clip = CLIPImageProcessorPil()
    levels = np.arange(256, dtype=np.uint8)
    tables = {}
    # the u8 → f32 maps of each pipeline, applied to a 1×256 image holding every level
    strip = Image.fromarray(np.repeat(levels[None, :, None], 3, axis=2), "RGB")
    for name, (_, to_tensor) in tv.items():
        tables[name] = to_tensor(strip)[:, 0, :].numpy()  # [3, 256]
    clip_strip = clip(strip, do_resize=False, do_center_crop=False, return_tensors="np")["pixel_values"][0]  # [3, 1, 256]
    tables["clip"] = clip_strip[:, 0, :].astype(np.float32)

    tensors = {}
    for i, im in enumerate(images):
        outs = {}
        for name, (geom, to_tensor) in tv.items():
            u8 = geom(im)
            outs[name] = (np.asarray(u8), to_tensor(u8).numpy())
        c_u8 = clip(im, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"][0]  # [3, 224, 224] float
        c_f32 = clip(im, return_tensors="np")["pixel_values"][0]
        assert np.array_equal(c_u8, np.round(c_u8)) and c_u8.min() >= 0 and c_u8.max() <= 255
        outs["clip"] = (c_u8.transpose(1, 2, 0).astype(np.uint8), c_f32)
        for name, (u8, f32) in outs.items():
            assert u8.shape == (224, 224, 3), (name, u8.shape)
            from_table = np.stack([tables[name][c][u8[:, :, c]] for c in range(3)])
            diff = np.abs(from_table - f32).max()
            assert diff == 0.0, f"{name} image {i}: the level table differs from the pipeline by {diff}"
            Image.fromarray(u8, "RGB").save(os.path.join(d, f"{name}_{i}.png"), optimize=True)
        # how far transformers' default (torchvision-backed) CLIPImageProcessor is from the Pillow one
        try:
            from transformers import CLIPImageProcessor

            fast = CLIPImageProcessor()(im, return_tensors="np")["pixel_values"][0]
            print(f"preprocess image {i}: torchvision-backed CLIPImageProcessor vs Pillow-backed: max abs diff {np.abs(fast - c_f32).max():.4f}")
        except Exception as e:  # noqa: BLE001 — informational only
            print(f"(torchvision-backed CLIPImageProcessor not compared: {e})")
    for name, t in tables.items():
        tensors[f"levels_{name}"] = torch.from_numpy(np.ascontiguousarray(t))
    save_tensors(os.path.join(d, "expected.safetensors"), tensors)
    print("preprocess: sizes", [im.size for im in images])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    check_resnet_layout()
    make_resnet(args.out, "resnet-bottleneck-tiny", Bottleneck, [1, 2, 1, 1], 8, 10, seed=11)
    make_resnet(args.out, "resnet-basic-tiny", BasicBlock, [2, 1, 1, 1], 4, 7, seed=12)
    make_vit(args.out, seed=13)
    make_clip(args.out, seed=14)
    make_preprocess(args.out)
    total = 0
    for dirpath, _, files in os.walk(args.out):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    print(f"fixtures: {total / 1024:.0f} KiB in {args.out}")


if __name__ == "__main__":
    main()
