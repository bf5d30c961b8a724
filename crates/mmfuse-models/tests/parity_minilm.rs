//! Parity of the Rust BERT port with PyTorch/transformers on sentence-transformers'
//! all-MiniLM-L6-v2 (`shared/models/all-minilm-l6-v2`), against the goldens in
//! `shared/golden/minilm.{safetensors,json}` (see `shared/golden/README.md`), plus loading errors
//! and a fine-tuning step.
//!
//! The model and golden files are part of the repository's environment (`../shared` next to the
//! checkout; override with `MMFUSE_SHARED_DIR`): when they are missing these tests fail, they
//! do not skip.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use mmfuse_models::encoders::bert::{BertConfig, BertModel, mean_pooled_normalized};
use mmfuse_models::pretrained::Weights;
use std::path::PathBuf;

fn shared() -> PathBuf {
    let dir = match std::env::var_os("MMFUSE_SHARED_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    };
    for f in [
        "models/all-minilm-l6-v2/model.safetensors",
        "models/all-minilm-l6-v2/config.json",
        "models/all-minilm-l6-v2/tokenizer.json",
        "golden/minilm.safetensors",
        "golden/minilm.json",
    ] {
        assert!(
            dir.join(f).is_file(),
            "required test file {} is missing (the shared models/goldens belong to the repo's environment; set MMFUSE_SHARED_DIR to their folder)",
            dir.join(f).display()
        );
    }
    dir
}

struct Golden {
    ids: Vec<i64>,
    mask: Vec<i64>,
    hidden: Vec<f32>,
    embedding: Vec<f32>,
    b: usize,
    l: usize,
    d: usize,
}

fn golden(device: &Device) -> Golden {
    let w = Weights::from_safetensors(shared().join("golden/minilm.safetensors"), device).unwrap();
    let (ids, s) = w.get_i64_vec("input_ids", None).unwrap();
    let (b, l) = (s[0], s[1]);
    let (mask, _) = w.get_i64_vec("attention_mask", Some(&[b, l])).unwrap();
    let (hidden, hs) = w.get_f32_vec("last_hidden_state", None).unwrap();
    let d = hs[2];
    assert_eq!(hs, vec![b, l, d]);
    let (embedding, _) = w.get_f32_vec("sentence_embedding", Some(&[b, d])).unwrap();
    Golden { ids, mask, hidden, embedding, b, l, d }
}

#[test]
fn tokenizer_reproduces_golden_input_ids() {
    let dir = shared();
    let d = Device::flex();
    let g = golden(&d);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("golden/minilm.json")).unwrap()).unwrap();
    let sentences: Vec<String> = json["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    assert_eq!(sentences.len(), g.b);

    let mut tok = tokenizers::Tokenizer::from_file(dir.join("models/all-minilm-l6-v2/tokenizer.json")).unwrap();
    // tokenizer.json enables padding and truncation at 128; the goldens pad to the longest instead.
    tok.with_padding(None);
    tok.with_truncation(None).unwrap();
    let enc: Vec<Vec<u32>> = sentences.iter().map(|s| tok.encode(s.as_str(), true).unwrap().get_ids().to_vec()).collect();
    let lengths: Vec<usize> = enc.iter().map(Vec::len).collect();
    let expected_lengths: Vec<usize> = json["lengths"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(lengths, expected_lengths);
    let l = *lengths.iter().max().unwrap();
    assert_eq!(l, g.l);
    let mut ids = vec![0i64; g.b * l];
    let mut mask = vec![0i64; g.b * l];
    for (i, e) in enc.iter().enumerate() {
        for (j, &t) in e.iter().enumerate() {
            ids[i * l + j] = t as i64;
            mask[i * l + j] = 1;
        }
    }
    let diff = ids.iter().zip(&g.ids).filter(|(a, b)| a != b).count();
    println!("input_ids: {diff} of {} differ", ids.len());
    assert_eq!(ids, g.ids, "input_ids differ from the golden");
    assert_eq!(mask, g.mask, "attention_mask differs from the golden");
}

#[test]
fn minilm_matches_pytorch() {
    let dir = shared();
    let device = Device::flex();
    let g = golden(&device);
    let (model, config) = BertModel::load(&dir.join("models/all-minilm-l6-v2"), &device).unwrap();
    assert_eq!((config.hidden_size, config.num_hidden_layers, config.num_attention_heads), (384, 6, 12));
    assert_eq!(g.d, config.hidden_size);
    assert!(model.pooler.is_some(), "the all-MiniLM-L6-v2 checkpoint has pooler weights");

    let ids = Tensor::<2, Int>::from_data(TensorData::new(g.ids.clone(), [g.b, g.l]), &device);
    let mask_bool: Vec<bool> = g.mask.iter().map(|&m| m == 1).collect();
    let mask = Tensor::<2, Bool>::from_data(TensorData::new(mask_bool.clone(), [g.b, g.l]), &device);
    let hidden = model.forward(ids, mask.clone(), None);
    let emb = mean_pooled_normalized(hidden.clone(), mask).into_data().try_to_vec::<f32>().unwrap();
    let pooled = model.pooled(hidden.clone()).unwrap().into_data().try_to_vec::<f32>().unwrap();
    let hidden = hidden.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(hidden.len(), g.hidden.len());

    let (mut real, mut pad) = (0f32, 0f32);
    for (i, (a, b)) in hidden.iter().zip(&g.hidden).enumerate() {
        let d = (a - b).abs();
        assert!(d.is_finite(), "non-finite hidden state at flat index {i}");
        if mask_bool[i / g.d] { real = real.max(d) } else { pad = pad.max(d) }
    }
    let e = emb.iter().zip(&g.embedding).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    // pooler = tanh(W h[CLS] + b), checked on the host from the checkpoint's weights and the golden states
    let w = Weights::from_safetensors(dir.join("models/all-minilm-l6-v2/model.safetensors"), &device).unwrap().pp("pooler.dense");
    let (pw, _) = w.get_f32_vec("weight", Some(&[g.d, g.d])).unwrap();
    let (pb, _) = w.get_f32_vec("bias", Some(&[g.d])).unwrap();
    let mut p_diff = 0f32;
    for bi in 0..g.b {
        let cls = &g.hidden[bi * g.l * g.d..bi * g.l * g.d + g.d];
        for o in 0..g.d {
            let z: f32 = pb[o] + (0..g.d).map(|i| pw[o * g.d + i] * cls[i]).sum::<f32>();
            p_diff = p_diff.max((z.tanh() - pooled[bi * g.d + o]).abs());
        }
    }
    assert!(p_diff <= 1e-4, "pooler output: max abs diff {p_diff:e}");
    println!("MiniLM max abs diff: last_hidden_state {real:.3e} at real tokens ({pad:.3e} at padding), sentence_embedding {e:.3e}, pooler {p_diff:.3e}");
    assert!(real <= 1e-4, "last_hidden_state at real tokens: max abs diff {real:e} > 1e-4");
    assert!(pad <= 1e-3, "last_hidden_state at padded positions: max abs diff {pad:e} > 1e-3");
    assert!(e <= 1e-4, "sentence_embedding: max abs diff {e:e} > 1e-4");
}

/// A config that does not match the checkpoint is an error naming the file, the tensor key and
/// both shapes; `bert.`-prefixed checkpoints (`BertFor*`) load too.
#[test]
fn load_errors_name_the_tensor_and_prefixed_keys_load() {
    let dir = shared().join("models/all-minilm-l6-v2");
    let device = Device::flex();
    let w = Weights::from_safetensors(dir.join("model.safetensors"), &device).unwrap();

    let wrong = BertConfig { hidden_size: 768, ..BertConfig::from_file(dir.join("config.json")).unwrap() };
    let err = BertModel::from_weights(&w, &wrong).unwrap_err().to_string();
    assert!(err.contains("model.safetensors: tensor 'embeddings.word_embeddings.weight' has shape [30522, 384], expected [30522, 768]"), "{err}");
    let wrong = BertConfig { num_hidden_layers: 7, ..BertConfig::from_file(dir.join("config.json")).unwrap() };
    let err = BertModel::from_weights(&w, &wrong).unwrap_err().to_string();
    assert!(err.contains("model.safetensors: missing tensor 'encoder.layer.6.attention.self.query.weight'"), "{err}");

    let err = BertModel::load(&dir.join("no-such-subfolder"), &device).unwrap_err().to_string();
    assert!(err.contains("no-such-subfolder/config.json"), "{err}");

    // A 1-layer checkpoint with every key prefixed `bert.` (as in `BertFor*` models) and without
    // the (optional) pooler loads and agrees with the unprefixed one.
    let tmp = std::env::temp_dir().join(format!("mmfuse-bert-prefixed-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .iter()
        .filter(|(k, _)| !k.starts_with("pooler.") && (!k.starts_with("encoder.layer.") || k.starts_with("encoder.layer.0.")))
        .map(|(k, v)| (format!("bert.{k}"), v))
        .collect();
    std::fs::write(tmp.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
    let one_layer = BertConfig { num_hidden_layers: 1, ..BertConfig::from_file(dir.join("config.json")).unwrap() };
    std::fs::write(tmp.join("config.json"), serde_json::to_string(&one_layer).unwrap()).unwrap();
    let (prefixed, _) = BertModel::load(&tmp, &device).unwrap();
    assert!(prefixed.pooler.is_none());
    let plain = BertModel::from_weights(&w, &one_layer).unwrap();
    assert!(plain.pooler.is_some());
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![101i64, 7592, 2088, 102], [1, 4]), &device);
    let mask = Tensor::<2, Bool>::from_data(TensorData::new(vec![true; 4], [1, 4]), &device);
    let a = prefixed.forward(ids.clone(), mask.clone(), None).into_data().try_to_vec::<f32>().unwrap();
    let b = plain.forward(ids, mask, None).into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a, b);
    std::fs::remove_dir_all(&tmp).ok();
}

struct ParamCount {
    with_grad: usize,
    total: usize,
    grads: GradientsParams,
}

impl ModuleVisitor for ParamCount {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.total += 1;
        if self.grads.get::<D>(p.id).is_some() {
            self.with_grad += 1;
        }
    }
}

#[test]
fn one_adamw_step_changes_the_weights() {
    let device = Device::flex().autodiff();
    device.seed(7);
    let config = BertConfig {
        vocab_size: 100,
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 16,
        ..Default::default()
    };
    let model = config.init(&device);
    let before = model.layers[0].attention.query.weight.val().into_data().try_to_vec::<f32>().unwrap();

    let ids = Tensor::<2, Int>::from_data(TensorData::new((0..16).map(|i| (i * 7 % 100) as i64).collect::<Vec<_>>(), [2, 8]), &device);
    let mask = Tensor::<2, Bool>::from_data(TensorData::new((0..16).map(|i| i % 8 < 6 || i < 8).collect::<Vec<_>>(), [2, 8]), &device);
    let types = Tensor::<2, Int>::from_data(TensorData::new((0..16).map(|i| (i % 8 >= 4) as i64).collect::<Vec<_>>(), [2, 8]), &device);
    let hidden = model.forward(ids, mask.clone(), Some(types));
    let pooled = model.pooled(hidden.clone()).unwrap();
    let loss = mean_pooled_normalized(hidden, mask).sum() + pooled.powf_scalar(2.0).mean();

    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut count = ParamCount { with_grad: 0, total: 0, grads };
    model.visit(&mut count);
    // every Param gets a gradient (position rows beyond 8 get zeros but are still in the graph)
    assert_eq!(count.with_grad, count.total, "{} of {} parameters got a gradient", count.with_grad, count.total);
    assert_eq!(count.total, 5 + 2 * 16 + 2);

    let mut optim = AdamWConfig::new().init();
    let model = optim.step(1e-3, model, count.grads);
    let after = model.layers[0].attention.query.weight.val().into_data().try_to_vec::<f32>().unwrap();
    let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    let max = before.iter().zip(&after).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("AdamW step: {changed} of {} entries of encoder.layer.0.attention.self.query.weight changed (max |Δ| {max:.2e})", before.len());
    assert!(changed > before.len() / 2, "only {changed} of {} weights changed", before.len());
    // Adam's first step moves each weight by about lr
    assert!(max <= 1.5e-3, "step too large: {max}");
}
