//! Parity of the ResNet, ViT and CLIP ports with their reference implementations (torchvision,
//! Hugging Face `transformers`) on tiny random-weight models, and loading errors.
//!
//! The fixtures in `fixtures/encoders/` (the workspace's) are committed: `scripts/make_encoder_fixtures.py` built each
//! model with fixed seeds (batch norms with random running statistics), saved it with the
//! reference key names (`config.json` + `model.safetensors`, plus `tokenizer.json` for CLIP) and
//! stored the reference outputs for fixed inputs in `expected.safetensors`. No torch is needed.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use mmfuse_models::encoders::clip::{ClipConfig, ClipModel};
use mmfuse_models::encoders::resnet::{BlockKind, ResNet, ResNetConfig};
use mmfuse_models::encoders::vit::{VitConfig, VitModel};
use mmfuse_models::pretrained::{LoadError, Weights};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/encoders")).join(name);
    assert!(dir.is_dir(), "fixture folder {} is missing (generate it with scripts/make_encoder_fixtures.py)", dir.display());
    dir
}

fn expected(dir: &Path, device: &Device) -> Weights {
    Weights::from_safetensors(dir.join("expected.safetensors"), device).unwrap()
}

fn vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| if x.is_finite() { (x - y).abs() } else { f32::INFINITY }).fold(0f32, f32::max)
}

/// Compare `got` with the stored `name` (shape checked) and return the max abs difference.
fn diff(e: &Weights, name: &str, got: Vec<f32>, shape: &[usize]) -> f32 {
    let (want, _) = e.get_f32_vec(name, Some(shape)).unwrap();
    max_abs(&got, &want)
}

const TOL: f32 = 1e-4;

#[test]
fn resnets_match_torchvision() {
    let device = Device::flex();
    for (name, block, layers, width, classes) in
        [("resnet-bottleneck-tiny", BlockKind::Bottleneck, [1, 2, 1, 1], 8, 10), ("resnet-basic-tiny", BlockKind::Basic, [2, 1, 1, 1], 4, 7)]
    {
        let dir = fixture(name);
        let (model, config) = ResNet::load(dir.join("model.safetensors"), &device).unwrap();
        assert_eq!(config, ResNetConfig { block, layers, width, num_classes: classes });
        let from_json: ResNetConfig = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(config, from_json);
        let c = config.feature_channels();
        assert_eq!(c, width * 8 * block.expansion());

        let e = expected(&dir, &device);
        let x: Tensor<4> = e.get("pixel_values", [2, 3, 40, 56]).unwrap();
        let features = model.features(x.clone());
        // 40x56 -> ceil(/32) = 2x2
        assert_eq!(features.dims(), [2, c, 2, 2]);
        let logits = model.forward(x);
        let df = diff(&e, "features", vec(features), &[2, c, 2, 2]);
        let dl = diff(&e, "logits", vec(logits), &[2, classes]);
        println!("{name}: max abs diff features {df:.3e}, logits {dl:.3e}");
        assert!(df <= TOL, "{name} features: max abs diff {df:e}");
        assert!(dl <= TOL, "{name} logits: max abs diff {dl:e}");
    }
}

#[test]
fn vit_matches_transformers() {
    let device = Device::flex();
    let dir = fixture("vit-tiny");
    let (model, config) = VitModel::load(&dir, &device).unwrap();
    assert_eq!((config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.num_patches()), (32, 2, 4, 16));
    let e = expected(&dir, &device);
    let x: Tensor<4> = e.get("pixel_values", [2, 3, 32, 32]).unwrap();
    let hidden = model.forward(x);
    assert_eq!(hidden.dims(), [2, 17, 32]);
    let pooled = model.pooled(hidden.clone()).expect("the fixture has a pooler");
    let dh = diff(&e, "last_hidden_state", vec(hidden), &[2, 17, 32]);
    let dp = diff(&e, "pooler_output", vec(pooled), &[2, 32]);
    println!("vit-tiny: max abs diff last_hidden_state {dh:.3e}, pooler_output {dp:.3e}");
    assert!(dh <= TOL, "last_hidden_state: max abs diff {dh:e}");
    assert!(dp <= TOL, "pooler_output: max abs diff {dp:e}");
}

fn clip_text_inputs(e: &Weights, device: &Device) -> (Tensor<2, Int>, Tensor<2, Bool>, Vec<bool>, [usize; 2]) {
    let (ids, s) = e.get_i64_vec("input_ids", None).unwrap();
    let (b, l) = (s[0], s[1]);
    let (mask, _) = e.get_i64_vec("attention_mask", Some(&[b, l])).unwrap();
    let mask: Vec<bool> = mask.iter().map(|&m| m == 1).collect();
    (Tensor::from_data(TensorData::new(ids, [b, l]), device), Tensor::from_data(TensorData::new(mask.clone(), [b, l]), device), mask, [b, l])
}

#[test]
fn clip_matches_transformers() {
    let device = Device::flex();
    let dir = fixture("clip-tiny");
    let (model, config) = ClipModel::load(&dir, &device).unwrap();
    assert_eq!((config.projection_dim, config.text_config.vocab_size, config.text_config.eos_token_id, config.vision_config.patch_size), (16, 1000, 999, 8));
    let e = expected(&dir, &device);
    let (ids, mask, mask_vec, [b, l]) = clip_text_inputs(&e, &device);
    let pixels: Tensor<4> = e.get("pixel_values", [2, 3, 32, 32]).unwrap();

    // text tower: hidden states at real tokens strictly, at padding loosely (they are not used)
    let hidden = vec(model.text_model.forward(ids.clone(), mask.clone()));
    let (want, _) = e.get_f32_vec("text_last_hidden_state", Some(&[b, l, 32])).unwrap();
    let (mut real, mut pad) = (0f32, 0f32);
    for (i, (a, w)) in hidden.iter().zip(&want).enumerate() {
        let d = if a.is_finite() { (a - w).abs() } else { f32::INFINITY };
        if mask_vec[i / 32] { real = real.max(d) } else { pad = pad.max(d) }
    }
    let vision_hidden = vec(model.vision_model.forward(pixels.clone()));
    let dv = diff(&e, "vision_last_hidden_state", vision_hidden, &[2, 17, 32]);
    let text_embeds = model.text_embeds(ids, mask);
    let image_embeds = model.image_embeds(pixels);
    assert_eq!((text_embeds.dims(), image_embeds.dims()), ([b, 16], [2, 16]));
    let logits = model.logits_per_image(image_embeds.clone(), text_embeds.clone());
    let dt = diff(&e, "text_embeds", vec(text_embeds), &[b, 16]);
    let di = diff(&e, "image_embeds", vec(image_embeds), &[2, 16]);
    let dl = diff(&e, "logits_per_image", vec(logits), &[2, b]);

    // EOS pooling rules on raw ids without an EOS: the current rule pools position 0, the
    // legacy one (eos_token_id == 2) the largest id (first of ties)
    let (raw, rs) = e.get_i64_vec("raw_input_ids", None).unwrap();
    let raw = Tensor::<2, Int>::from_data(TensorData::new(raw, [rs[0], rs[1]]), &device);
    let all = Tensor::<2, Bool>::from_data(TensorData::new(vec![true; rs[0] * rs[1]], [rs[0], rs[1]]), &device);
    assert_eq!(model.text_model.eos_positions(&raw), vec![0, 0]);
    let dr = diff(&e, "raw_text_embeds", vec(model.text_embeds(raw.clone(), all.clone())), &[2, 16]);
    let mut legacy_config = config.clone();
    legacy_config.text_config.eos_token_id = 2;
    let legacy = ClipModel::from_weights(&Weights::from_safetensors(dir.join("model.safetensors"), &device).unwrap(), &legacy_config).unwrap();
    assert_eq!(legacy.text_model.eos_positions(&raw), vec![3, 1]);
    let drl = diff(&e, "raw_text_embeds_legacy", vec(legacy.text_embeds(raw, all)), &[2, 16]);

    println!(
        "clip-tiny: max abs diff text last_hidden_state {real:.3e} at real tokens ({pad:.3e} at padding), vision last_hidden_state {dv:.3e}, \
         text_embeds {dt:.3e}, image_embeds {di:.3e}, logits_per_image {dl:.3e}, EOS-rule pooling {dr:.3e}, legacy pooling {drl:.3e}"
    );
    for (what, d) in [
        ("text last_hidden_state", real),
        ("vision last_hidden_state", dv),
        ("text_embeds", dt),
        ("image_embeds", di),
        ("raw_text_embeds", dr),
        ("raw_text_embeds_legacy", drl),
    ] {
        assert!(d <= TOL, "{what}: max abs diff {d:e}");
    }
    assert!(pad <= 1e-3, "text last_hidden_state at padding: max abs diff {pad:e}");
    // (logits are cosine similarities scaled by exp(logit_scale) = 20)
    assert!(dl <= TOL, "logits_per_image: max abs diff {dl:e}");
}

#[test]
fn clip_tokenizer_reproduces_script_ids() {
    let device = Device::flex();
    let dir = fixture("clip-tiny");
    let e = expected(&dir, &device);
    let (want_ids, s) = e.get_i64_vec("input_ids", None).unwrap();
    let (want_mask, _) = e.get_i64_vec("attention_mask", None).unwrap();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("texts.json")).unwrap()).unwrap();
    let texts: Vec<&str> = json["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(texts.len(), s[0]);

    let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let eos = tok.token_to_id("<|endoftext|>").unwrap() as i64;
    let bos = tok.token_to_id("<|startoftext|>").unwrap() as i64;
    assert_eq!((bos, eos), (998, 999));
    let enc: Vec<Vec<i64>> = texts.iter().map(|t| tok.encode(*t, true).unwrap().get_ids().iter().map(|&i| i as i64).collect()).collect();
    let l = enc.iter().map(Vec::len).max().unwrap();
    assert_eq!(l, s[1]);
    // CLIP pads with <|endoftext|>
    let mut ids = vec![eos; enc.len() * l];
    let mut mask = vec![0i64; enc.len() * l];
    for (i, row) in enc.iter().enumerate() {
        ids[i * l..i * l + row.len()].copy_from_slice(row);
        mask[i * l..i * l + row.len()].fill(1);
        assert_eq!((row[0], *row.last().unwrap()), (bos, eos));
    }
    println!("clip-tiny ids: {enc:?}");
    assert_eq!(ids, want_ids, "token ids differ from the script's (transformers) ids");
    assert_eq!(mask, want_mask);
}

/// Write `src` with `drop` removed and `reshape` replaced by a zero tensor of another shape.
fn edited_copy(src: &Path, tag: &str, drop: Option<&str>, reshape: Option<(&str, Vec<usize>)>) -> PathBuf {
    let bytes = std::fs::read(src).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let zeros = vec![0u8; 4 * reshape.as_ref().map_or(0, |(_, s)| s.iter().product())];
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .iter()
        .filter(|(k, _)| Some(*k) != drop)
        .map(|(k, v)| match &reshape {
            Some((name, shape)) if *name == k => (k.to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), &zeros).unwrap()),
            _ => (k.to_string(), v),
        })
        .collect();
    let path = std::env::temp_dir().join(format!("mmfuse-parity-random-{tag}-{}.safetensors", std::process::id()));
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    path
}

fn missing_key(err: &LoadError) -> &str {
    match err {
        LoadError::Missing { key, .. } => key,
        other => panic!("expected LoadError::Missing, got {other}"),
    }
}

fn shape_error(err: &LoadError) -> (&str, &[usize], &[usize]) {
    match err {
        LoadError::Shape { key, found, expected, .. } => (key, found, expected),
        other => panic!("expected LoadError::Shape, got {other}"),
    }
}

#[test]
fn load_errors_name_the_tensor() {
    let device = Device::flex();

    // ResNet: a missing running statistic, a wrong shape, a config that does not match
    let src = fixture("resnet-bottleneck-tiny").join("model.safetensors");
    let p = edited_copy(&src, "resnet-missing", Some("layer3.0.bn2.running_var"), None);
    let err = ResNet::load(&p, &device).unwrap_err();
    std::fs::remove_file(&p).ok();
    assert_eq!(missing_key(&err), "layer3.0.bn2.running_var");
    assert!(err.to_string().contains("missing tensor 'layer3.0.bn2.running_var'"), "{err}");
    let p = edited_copy(&src, "resnet-shape", None, Some(("layer2.1.conv2.weight", vec![16, 16, 1, 1])));
    let err = ResNet::load(&p, &device).unwrap_err();
    std::fs::remove_file(&p).ok();
    assert_eq!(shape_error(&err), ("layer2.1.conv2.weight", &[16usize, 16, 1, 1][..], &[16usize, 16, 3, 3][..]));
    let w = Weights::from_safetensors(&src, &device).unwrap();
    let err = ResNet::from_weights(&w, &ResNetConfig { layers: [1, 3, 1, 1], ..ResNetConfig::infer(&w).unwrap() }).unwrap_err();
    assert_eq!(missing_key(&err), "layer2.2.conv1.weight");
    let err = ResNet::from_weights(&w, &ResNetConfig { block: BlockKind::Basic, ..ResNetConfig::infer(&w).unwrap() }).unwrap_err();
    assert_eq!(shape_error(&err).0, "layer1.0.conv1.weight");
    let err = ResNet::load(fixture("vit-tiny").join("model.safetensors"), &device).unwrap_err();
    assert_eq!(missing_key(&err), "conv1.weight");

    // ViT: one layer more than stored, a wrong position table
    let dir = fixture("vit-tiny");
    let w = Weights::from_safetensors(dir.join("model.safetensors"), &device).unwrap();
    let config = VitConfig::from_file(dir.join("config.json")).unwrap();
    let err = VitModel::from_weights(&w, &VitConfig { num_hidden_layers: 3, ..config.clone() }).unwrap_err();
    assert_eq!(missing_key(&err), "encoder.layer.2.layernorm_before.weight");
    let err = VitModel::from_weights(&w, &VitConfig { image_size: 40, ..config.clone() }).unwrap_err();
    assert_eq!(shape_error(&err), ("embeddings.position_embeddings", &[1usize, 17, 32][..], &[1usize, 26, 32][..]));
    assert!(err.to_string().contains("tensor 'embeddings.position_embeddings' has shape [1, 17, 32], expected [1, 26, 32]"), "{err}");

    // CLIP: a missing projection, another projection width, an invalid config.json
    let dir = fixture("clip-tiny");
    let p = edited_copy(&dir.join("model.safetensors"), "clip-missing", Some("visual_projection.weight"), None);
    let config = ClipConfig::from_file(dir.join("config.json")).unwrap();
    let err = ClipModel::from_weights(&Weights::from_safetensors(&p, &device).unwrap(), &config).unwrap_err();
    std::fs::remove_file(&p).ok();
    assert_eq!(missing_key(&err), "visual_projection.weight");
    let w = Weights::from_safetensors(dir.join("model.safetensors"), &device).unwrap();
    let err = ClipModel::from_weights(&w, &ClipConfig { projection_dim: 8, ..config.clone() }).unwrap_err();
    assert_eq!(shape_error(&err), ("text_projection.weight", &[16usize, 32][..], &[8usize, 32][..]));
    let mut c = config.clone();
    c.text_config.max_position_embeddings = 77;
    let err = ClipModel::from_weights(&w, &c).unwrap_err();
    assert_eq!(shape_error(&err).0, "text_model.embeddings.position_embedding.weight");
    let err = ClipModel::load(&dir.join("no-such-folder"), &device).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }) && err.to_string().contains("no-such-folder/config.json"), "{err}");
}
