//! `mmfuse encode`: embeddings of texts (a pretrained BERT folder) or images (torchvision
//! ResNet or MobileNetV2 weights), written as one safetensors file — for caching features or
//! using them elsewhere. [`TextEmbedder`] and [`ImageEmbedder`] embed in memory (the Python
//! package's `encode`).
//!
//! The file holds `embeddings` `[N, D]` (f32, row i = the i-th non-empty line / the i-th image
//! file in name order) and metadata: the encoder, the pooling, and for images the file names
//! (`files`, a JSON list).

use anyhow::{Context, Result, bail};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mmfuse_data::image::{ImageSpec, load_image};
use mmfuse_data::preprocess::Preprocess;
use mmfuse_data::text::TextTokenizer;
use mmfuse_kernels::device::on_compute_pool;
use mmfuse_models::encoders::bert::{BertModel, mean_pooled_normalized};
use mmfuse_models::encoders::image::TorchvisionCnn;
use mmfuse_models::encoders::{MobileNetV2, ResNet};
use mmfuse_models::layers::masked_mean;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How token states become one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Pooling {
    /// Mean over real tokens.
    Mean,
    /// Mean over real tokens, L2-normalised (sentence-transformers models such as MiniLM).
    MeanNormalized,
    /// The `[CLS]` state.
    Cls,
}

fn progress(n: usize, quiet: bool, what: &str) -> ProgressBar {
    let pb = if quiet { ProgressBar::with_draw_target(Some(n as u64), ProgressDrawTarget::hidden()) } else { ProgressBar::new(n as u64) };
    pb.set_style(
        ProgressStyle::with_template(&format!("{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {what} {{per_sec}} ETA {{eta}}"))
            .expect("valid template"),
    );
    pb
}

fn write(out: &Path, rows: Vec<f32>, n: usize, d: usize, metadata: HashMap<String, String>) -> Result<()> {
    let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n, d], &bytes)?;
    let tmp = out.with_extension("safetensors.tmp");
    safetensors::serialize_to_file([("embeddings", view)], Some(metadata), &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// How to encode texts.
#[derive(Clone, Copy, Debug)]
pub struct TextOptions {
    /// Word pieces per text (`[CLS]`/`[SEP]` included).
    pub max_len: usize,
    /// Texts per forward pass.
    pub batch: usize,
    pub pooling: Pooling,
    /// No progress bar.
    pub quiet: bool,
}

/// A pretrained BERT folder's encoder and tokenizer, ready to embed texts in memory (what
/// `mmfuse encode --texts` and the Python package's `encode` call).
pub struct TextEmbedder {
    bert: BertModel,
    tok: TextTokenizer,
    d: usize,
    device: Device,
}

impl TextEmbedder {
    pub fn load(dir: &Path, max_len: usize, device: &Device) -> Result<Self> {
        let (bert, config) = BertModel::load(dir, device).with_context(|| format!("loading the text encoder {}", dir.display()))?;
        if max_len > config.max_position_embeddings {
            bail!("max_len {max_len} exceeds the encoder's max_position_embeddings {}", config.max_position_embeddings);
        }
        let tok = TextTokenizer::from_file(&dir.join("tokenizer.json"), max_len, true)?;
        Ok(Self { bert, tok, d: config.hidden_size, device: device.clone() })
    }

    /// Embedding size.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// Rows `[texts.len() × dim]` and how many texts were truncated; `each` is called with the
    /// number of texts done after every batch.
    pub fn embed(&self, texts: &[&str], batch: usize, pooling: Pooling, each: &dyn Fn(usize)) -> Result<(Vec<f32>, usize)> {
        let d = self.d;
        let mut rows = Vec::with_capacity(texts.len() * d);
        let mut truncated = 0;
        for chunk in texts.chunks(batch.max(1)) {
            let enc: Vec<_> = chunk.iter().map(|t| self.tok.encode(t)).collect();
            truncated += enc.iter().filter(|e| e.truncated).count();
            // trim the padding every text of the chunk shares
            let l = enc.iter().map(|e| e.mask.iter().rposition(|&m| m).map_or(1, |p| p + 1)).max().unwrap_or(1);
            let b = chunk.len();
            let ids: Vec<i64> = enc.iter().flat_map(|e| e.ids[..l].iter().map(|&x| x as i64)).collect();
            let mask: Vec<bool> = enc.iter().flat_map(|e| e.mask[..l].iter().copied()).collect();
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, l]), &self.device);
            let mask = Tensor::<2, Bool>::from_data(TensorData::new(mask, [b, l]), &self.device);
            let v = on_compute_pool(|| {
                let h = self.bert.forward(ids, mask.clone(), None);
                match pooling {
                    Pooling::Mean => masked_mean(h, mask),
                    Pooling::MeanNormalized => mean_pooled_normalized(h, mask),
                    Pooling::Cls => h.slice([0..b, 0..1, 0..d]).reshape([b, d]),
                }
            });
            rows.extend(v.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?);
            each(b);
        }
        Ok((rows, truncated))
    }
}

/// Embed every non-empty line of `texts` with the BERT in `dir`.
pub fn encode_texts(dir: &Path, texts: &Path, out: &Path, opts: TextOptions, device: &Device) -> Result<(usize, usize)> {
    let TextOptions { max_len, batch, pooling, quiet } = opts;
    let embedder = TextEmbedder::load(dir, max_len, device)?;
    let content = std::fs::read_to_string(texts).with_context(|| format!("cannot read {}", texts.display()))?;
    let lines: Vec<&str> = content.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        bail!("{} has no non-empty line", texts.display());
    }
    let pb = progress(lines.len(), quiet, "texts");
    let (rows, truncated) = embedder.embed(&lines, batch, pooling, &|n| pb.inc(n as u64))?;
    pb.finish_and_clear();
    if truncated > 0 {
        tracing::warn!("{truncated} texts were longer than --max-len {max_len} and were truncated");
    }
    let meta = HashMap::from([
        ("encoder".to_string(), dir.display().to_string()),
        ("source".to_string(), texts.display().to_string()),
        ("pooling".to_string(), format!("{pooling:?}")),
        ("truncated".to_string(), truncated.to_string()),
    ]);
    write(out, rows, lines.len(), embedder.dim(), meta)?;
    Ok((lines.len(), embedder.dim()))
}

/// Torchvision ResNet or MobileNetV2 weights with their preprocessing, ready to embed images in
/// memory (global-average-pooled features).
pub struct ImageEmbedder {
    net: TorchvisionCnn,
    spec: ImageSpec,
    device: Device,
}

impl ImageEmbedder {
    /// `weights`: the `.safetensors` file or a folder holding one (`model.safetensors`, or its
    /// only `.safetensors` file).
    pub fn load(weights: &Path, preprocess: Preprocess, device: &Device) -> Result<Self> {
        let weights = &mmfuse_models::pretrained::weights_file(weights).context("image encoder")?;
        let net = TorchvisionCnn::load(weights, device)
            .with_context(|| format!("image encoder {}: expected torchvision ResNet or MobileNetV2 weights", weights.display()))?;
        Ok(Self { net, spec: ImageSpec::from_preset(preprocess), device: device.clone() })
    }

    /// The preprocessing images go through (see [`mmfuse_data::image::to_tensor_data`]).
    pub fn spec(&self) -> &ImageSpec {
        &self.spec
    }

    /// Rows `[n × d]` and `d` for preprocessed images (CHW `f32` each, [`ImageEmbedder::spec`]).
    pub fn embed(&self, images: &[Vec<f32>]) -> Result<(Vec<f32>, usize)> {
        let s = self.spec.size as usize;
        if let Some((i, _)) = images.iter().enumerate().find(|(_, x)| x.len() != 3 * s * s) {
            bail!("image {i} has {} values, expected 3 × {s} × {s}", images[i].len());
        }
        let px: Vec<f32> = images.concat();
        let x = Tensor::<4>::from_data(TensorData::new(px, [images.len(), 3, s, s]), &self.device);
        let v = on_compute_pool(|| match &self.net {
            TorchvisionCnn::ResNet(r, _) => ResNet::pool(r.features(x)),
            TorchvisionCnn::MobileNetV2(m) => MobileNetV2::pool(m.features(x)),
        });
        let d = v.dims()[1];
        Ok((v.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?, d))
    }
}

/// Embed every image file of `images` (`.jpg`, `.jpeg`, `.png`, name order) with the
/// torchvision ResNet or MobileNetV2 weights in `weights` (global-average-pooled features).
/// `weights` may be the `.safetensors` file or a folder holding one (`model.safetensors`, or its
/// only `.safetensors` file).
pub fn encode_images(weights: &Path, images: &Path, out: &Path, preprocess: Preprocess, batch: usize, device: &Device, quiet: bool) -> Result<(usize, usize)> {
    let embedder = ImageEmbedder::load(weights, preprocess, device).context("--image-encoder")?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(images)
        .with_context(|| format!("cannot read {}", images.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| ["jpg", "jpeg", "png"].contains(&e.to_ascii_lowercase().as_str())))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no .jpg/.jpeg/.png file in {}", images.display());
    }
    let pb = progress(files.len(), quiet, "images");
    let mut rows = Vec::new();
    let mut d = 0;
    for chunk in files.chunks(batch.max(1)) {
        let px = chunk.iter().map(|f| load_image(f, embedder.spec())).collect::<std::result::Result<Vec<_>, _>>()?;
        let (v, dim) = embedder.embed(&px)?;
        d = dim;
        rows.extend(v);
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
    let meta = HashMap::from([
        ("encoder".to_string(), embedder_name(weights)),
        ("preprocess".to_string(), preprocess.name().to_string()),
        ("pooling".to_string(), "global average".to_string()),
        ("files".to_string(), serde_json::to_string(&names)?),
    ]);
    write(out, rows, files.len(), d, meta)?;
    Ok((files.len(), d))
}

fn embedder_name(weights: &Path) -> String {
    mmfuse_models::pretrained::weights_file(weights).unwrap_or_else(|_| weights.to_path_buf()).display().to_string()
}
