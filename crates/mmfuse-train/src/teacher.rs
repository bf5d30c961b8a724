//! CLFA's teacher: frozen CLIP text and image embeddings of every post of a classification
//! corpus, computed once (`mmfuse clip-embed`) and cached in one safetensors file that training
//! reads (`data.teacher`).
//!
//! Cache layout: tensors `text` `[N, P]` and `image` `[N, P]` (f32, CLIP's projected,
//! unnormalised embeddings), metadata `ids` (JSON list of the N sample ids, row order),
//! `clip` (the model folder) and `placeholder_images` (count).

use anyhow::{Context, Result, bail};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mmfuse_data::cls::ClsSample;
use mmfuse_data::image::{ImageLoader, ImageSpec, MissingImage};
use mmfuse_data::preprocess::Preprocess;
use mmfuse_data::text::TextTokenizer;
use mmfuse_models::encoders::ClipModel;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Teacher embeddings by sample id.
pub struct TeacherCache {
    pub dim: usize,
    pub by_id: HashMap<String, (Vec<f32>, Vec<f32>)>,
}

impl TeacherCache {
    /// Read a cache written by [`write_clip_cache`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read the teacher cache {}", path.display()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).with_context(|| format!("{} is not a safetensors file", path.display()))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)?;
        let ids: Vec<String> = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("ids"))
            .map(|s| serde_json::from_str(s))
            .transpose()?
            .with_context(|| format!("{}: no `ids` metadata (write it with mmfuse clip-embed)", path.display()))?;
        let get = |name: &str| -> Result<(Vec<f32>, Vec<usize>)> {
            let t = st.tensor(name).with_context(|| format!("{}: no `{name}` tensor", path.display()))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape().len() != 2 || t.shape()[0] != ids.len() {
                bail!("{}: `{name}` must be f32 [{}, P], found {:?} {:?}", path.display(), ids.len(), t.dtype(), t.shape());
            }
            Ok((t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(), t.shape().to_vec()))
        };
        let (text, ts) = get("text")?;
        let (image, is) = get("image")?;
        if ts != is {
            bail!("{}: `text` {:?} and `image` {:?} differ in shape", path.display(), ts, is);
        }
        let p = ts[1];
        let by_id = ids.into_iter().enumerate().map(|(i, id)| (id, (text[i * p..(i + 1) * p].to_vec(), image[i * p..(i + 1) * p].to_vec()))).collect();
        Ok(Self { dim: p, by_id })
    }
}

/// Every post of a classification corpus folder (`train.jsonl`, `dev.jsonl`, `test.jsonl`; a
/// post in several splits once) with its image path (`image_dir`, relative to `data_dir` unless
/// absolute, for posts that do not name their image) — what `mmfuse clip-embed` embeds.
pub fn corpus_posts(data_dir: &Path, image_dir: &Path) -> Result<Vec<(ClsSample, PathBuf)>> {
    let image_dir = if image_dir.is_absolute() { image_dir.to_path_buf() } else { data_dir.join(image_dir) };
    let mut samples = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for f in ["train.jsonl", "dev.jsonl", "test.jsonl"] {
        let (s, _) = mmfuse_data::cls::read_jsonl(&data_dir.join(f))?;
        for x in s {
            if seen.insert(x.id.clone()) {
                let p = crate::batches::cls_image_path(&x, data_dir, &image_dir);
                samples.push((x, p));
            }
        }
    }
    Ok(samples)
}

/// Compute CLIP text and image embeddings of `samples` (texts truncated to CLIP's 77 tokens,
/// images with CLIP's preprocessing; missing images per `missing`) and write the cache.
/// Returns (rows, P, placeholder images).
pub fn write_clip_cache(
    clip_dir: &Path,
    samples: &[(ClsSample, PathBuf)],
    out: &Path,
    missing: MissingImage,
    batch: usize,
    device: &Device,
    quiet: bool,
) -> Result<(usize, usize, usize)> {
    let (clip, config) = ClipModel::load(clip_dir, device).with_context(|| format!("loading CLIP from {}", clip_dir.display()))?;
    let tok = TextTokenizer::from_file(&clip_dir.join("tokenizer.json"), config.text_config.max_position_embeddings, true)?;
    let size = config.vision_config.image_size;
    // CLIP's own pipeline at 224; other (test-sized) towers: plain resize with CLIP's mean/std
    let spec = if size == 224 {
        ImageSpec::from_preset(Preprocess::Clip)
    } else {
        ImageSpec { size: size as u32, mean: Preprocess::Clip.mean(), std: Preprocess::Clip.std(), ..ImageSpec::default() }
    };
    let loader = ImageLoader::new(spec, missing);
    let pb =
        if quiet { ProgressBar::with_draw_target(Some(samples.len() as u64), ProgressDrawTarget::hidden()) } else { ProgressBar::new(samples.len() as u64) };
    pb.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} posts {per_sec} ETA {eta}").expect("valid template"));
    let mut text_rows = Vec::new();
    let mut image_rows = Vec::new();
    let mut dim = 0;
    for chunk in samples.chunks(batch.max(1)) {
        let b = chunk.len();
        let enc: Vec<_> = chunk.iter().map(|(s, _)| tok.encode(&s.text)).collect();
        let l = enc.iter().map(|e| e.mask.iter().rposition(|&m| m).map_or(1, |p| p + 1)).max().unwrap_or(1);
        let ids: Vec<i64> = enc.iter().flat_map(|e| e.ids[..l].iter().map(|&x| x as i64)).collect();
        let mask: Vec<bool> = enc.iter().flat_map(|e| e.mask[..l].iter().copied()).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, l]), device);
        let mask = Tensor::<2, Bool>::from_data(TensorData::new(mask, [b, l]), device);
        let t = clip.text_embeds(ids, mask);
        let paths: Vec<PathBuf> = chunk.iter().map(|(_, p)| p.clone()).collect();
        let px: Vec<f32> = loader.load_many(&paths)?.into_iter().flatten().collect();
        let i = clip.image_embeds(Tensor::<4>::from_data(TensorData::new(px, [b, 3, size, size]), device));
        dim = t.dims()[1];
        text_rows.extend(t.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?);
        image_rows.extend(i.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?);
        pb.inc(b as u64);
    }
    pb.finish_and_clear();
    let n = samples.len();
    let ids: Vec<&str> = samples.iter().map(|(s, _)| s.id.as_str()).collect();
    let tb: Vec<u8> = text_rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let ib: Vec<u8> = image_rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let tv = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n, dim], &tb)?;
    let iv = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n, dim], &ib)?;
    let placeholders = loader.placeholder_count();
    let meta = HashMap::from([
        ("ids".to_string(), serde_json::to_string(&ids)?),
        ("clip".to_string(), clip_dir.display().to_string()),
        ("placeholder_images".to_string(), placeholders.to_string()),
    ]);
    let tmp = out.with_extension("safetensors.tmp");
    safetensors::serialize_to_file([("text", tv), ("image", iv)], Some(meta), &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok((n, dim, placeholders))
}
