//! Loading pretrained weights from `.safetensors` files (the format Hugging Face and most
//! converted torchvision checkpoints use), and from PyTorch checkpoints (`pytorch_model.bin`,
//! `.pt`, `.pth`: a `state_dict` saved by `torch.save`), read by the `pytorch-reader` crate
//! without PyTorch and without executing anything from the file.
//!
//! [`Weights`] is a small path-scoped loader in the spirit of candle's `VarBuilder`: open a file
//! once with [`Weights::from_safetensors`], narrow it with [`Weights::pp`]
//! (`w.pp("encoder").pp("layer.0")` reads keys under `encoder.layer.0.`) and fetch tensors with
//! [`Weights::get`], which checks the stored shape against the expected one and converts
//! `f32`/`f16`/`bf16` to `f32`. Helpers build ready burn modules from PyTorch key layouts
//! ([`Weights::linear`] transposes PyTorch's `[out, in]` to burn's `[in, out]`).
//!
//! A missing tensor, a wrong shape or an unsupported dtype is a [`LoadError`] naming the file and
//! the full tensor key — never a silent random initialisation.

use burn::module::{Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig, Embedding, PaddingConfig2d};
use burn::tensor::{Device, Int, Tensor, TensorData};
use mmfuse_kernels::{LayerNorm, LayerNormConfig, Linear};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why pretrained weights (or their config) could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file (or config JSON).
    #[error("{}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    /// A tensor the model needs is not in the file.
    #[error("{}: missing tensor '{key}'", path.display())]
    Missing { path: PathBuf, key: String },
    /// A tensor has another shape than the model expects.
    #[error("{}: tensor '{key}' has shape {}, expected {}", path.display(), Dims(found), Dims(expected))]
    Shape { path: PathBuf, key: String, found: Vec<usize>, expected: Vec<usize> },
    /// A tensor is stored in a dtype this loader cannot convert.
    #[error("{}: tensor '{key}' has dtype {dtype}, expected {expected}", path.display())]
    Dtype { path: PathBuf, key: String, dtype: String, expected: &'static str },
    /// The model configuration is invalid (e.g. hidden size not divisible by the head count).
    #[error("{}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
}

/// Formats a shape as `[a, b, c]`.
struct Dims<'a>(&'a [usize]);

impl fmt::Display for Dims<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

struct Store {
    path: PathBuf,
    bytes: Vec<u8>,
    tensors: HashMap<String, Entry>,
    /// [`Weights::random`]: every tensor asked for is drawn, none is read.
    random: bool,
}

/// The weights file a path names: the file itself, or in a folder its `model.safetensors` (else
/// its only `.safetensors` file); anything else is an error saying what was expected.
pub fn weights_file(path: &Path) -> Result<PathBuf, LoadError> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let bad = |reason: String| LoadError::Config { path: path.to_path_buf(), reason };
    if !path.is_dir() {
        return Err(bad("no such file or folder (expected a .safetensors file, or a folder holding model.safetensors)".into()));
    }
    let named = path.join("model.safetensors");
    if named.is_file() {
        return Ok(named);
    }
    let found: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|source| LoadError::Io { path: path.to_path_buf(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(bad("the folder holds no .safetensors file (expected model.safetensors)".into())),
        many => Err(bad(format!("the folder holds {} .safetensors files and no model.safetensors; name the file", many.len()))),
    }
}

/// The checks every Transformer `config.json` here shares: `hidden_size` splits evenly into
/// `num_attention_heads`, and `hidden_act` is one we implement.
pub fn check_transformer_config(hidden_size: usize, num_attention_heads: usize, hidden_act: &str) -> Result<(), String> {
    if num_attention_heads == 0 || !hidden_size.is_multiple_of(num_attention_heads) {
        return Err(format!("hidden_size {hidden_size} is not a multiple of num_attention_heads {num_attention_heads}"));
    }
    if crate::layers::Activation::parse(hidden_act).is_none() {
        return Err(format!("unsupported hidden_act '{hidden_act}' (supported: {})", crate::layers::Activation::SUPPORTED));
    }
    Ok(())
}

/// Parse a Hugging Face `config.json` at `path` as a `what` config (`"BERT"`, `"ViT"`, …) and
/// check it with `validate`; every error names the file.
pub fn read_config<T: serde::de::DeserializeOwned>(path: &Path, what: &str, validate: impl Fn(&T) -> Result<(), String>) -> Result<T, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io { path: path.to_path_buf(), source })?;
    let config: T =
        serde_json::from_str(&text).map_err(|e| LoadError::Format { path: path.to_path_buf(), reason: format!("not a valid {what} config.json: {e}") })?;
    validate(&config).map_err(|reason| LoadError::Config { path: path.to_path_buf(), reason })?;
    Ok(config)
}

/// A scoped view of the tensors of one safetensors file (cheap to clone and to scope).
#[derive(Clone)]
pub struct Weights {
    store: Arc<Store>,
    prefix: String,
    device: Device,
}

impl fmt::Debug for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Weights").field("path", &self.store.path).field("prefix", &self.prefix).field("tensors", &self.store.tensors.len()).finish()
    }
}

impl Weights {
    /// Read a whole `.safetensors` file; tensors are created on `device` when fetched.
    pub fn from_safetensors(path: impl AsRef<Path>, device: &Device) -> Result<Self, LoadError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| LoadError::Io { path: path.clone(), source })?;
        let tensors = {
            let st =
                SafeTensors::deserialize(&bytes).map_err(|e| LoadError::Format { path: path.clone(), reason: format!("not a valid safetensors file: {e}") })?;
            let base = bytes.as_ptr() as usize;
            st.iter()
                .map(|(name, view)| {
                    let start = view.data().as_ptr() as usize - base;
                    let entry = Entry { dtype: view.dtype(), shape: view.shape().to_vec(), start, end: start + view.data().len() };
                    (name.to_string(), entry)
                })
                .collect()
        };
        Ok(Self { store: Arc::new(Store { path, bytes, tensors, random: false }), prefix: String::new(), device: device.clone() })
    }

    /// Read a PyTorch checkpoint (`torch.save` of a `state_dict`: ZIP, legacy or TAR layout,
    /// also a `{"state_dict": …}` / `{"model": …}` wrapper); tensors are created on `device` when
    /// fetched. Each tensor is copied once into row-major bytes.
    pub fn from_pytorch(path: impl AsRef<Path>, device: &Device) -> Result<Self, LoadError> {
        use pytorch_reader::{DType as P, PytorchReader};
        let path = path.as_ref().to_path_buf();
        let fmt_err = |e: &dyn fmt::Display| LoadError::Format { path: path.clone(), reason: format!("not a readable PyTorch checkpoint: {e}") };
        let mut reader = PytorchReader::new(&path).map_err(|e| fmt_err(&e))?;
        if reader.is_empty() {
            for key in ["state_dict", "model", "module"] {
                if let Ok(r) = PytorchReader::with_top_level_key(&path, key)
                    && !r.is_empty()
                {
                    reader = r;
                    break;
                }
            }
        }
        let mut bytes = Vec::new();
        let mut tensors = HashMap::new();
        let mut names: Vec<String> = reader.keys();
        names.sort_unstable();
        for name in names {
            let t = reader.get(&name).expect("a listed key");
            let dtype = match t.dtype() {
                P::F64 => Dtype::F64,
                P::F32 => Dtype::F32,
                P::F16 => Dtype::F16,
                P::BF16 => Dtype::BF16,
                P::I64 => Dtype::I64,
                P::I32 => Dtype::I32,
                P::I16 => Dtype::I16,
                P::I8 => Dtype::I8,
                P::U64 => Dtype::U64,
                P::U32 => Dtype::U32,
                P::U16 => Dtype::U16,
                P::U8 => Dtype::U8,
                P::Bool => Dtype::BOOL,
            };
            let data = t.read().map_err(|e| fmt_err(&format!("tensor '{name}': {e}")))?;
            let start = bytes.len();
            bytes.extend_from_slice(&data);
            tensors.insert(name, Entry { dtype, shape: t.shape().to_vec(), start, end: bytes.len() });
        }
        if tensors.is_empty() {
            return Err(LoadError::Format { path, reason: "the checkpoint holds no tensors".into() });
        }
        Ok(Self { store: Arc::new(Store { path, bytes, tensors, random: false }), prefix: String::new(), device: device.clone() })
    }

    /// Open weights by extension: `.safetensors`, else a PyTorch checkpoint (`.bin`, `.pt`,
    /// `.pth`).
    pub fn open(path: impl AsRef<Path>, device: &Device) -> Result<Self, LoadError> {
        let path = path.as_ref();
        if path.extension().is_some_and(|e| e == "safetensors") { Self::from_safetensors(path, device) } else { Self::from_pytorch(path, device) }
    }

    /// The weights file of a Hugging Face model folder: `model.safetensors`, else
    /// `pytorch_model.bin`.
    pub fn folder_file(dir: &Path) -> PathBuf {
        let st = dir.join("model.safetensors");
        if st.exists() || !dir.join("pytorch_model.bin").exists() { st } else { dir.join("pytorch_model.bin") }
    }

    /// Weights that hold nothing and draw every tensor asked for: N(0, 0.02) for weights and
    /// embeddings, norms at their identity (γ = 1, β = 0, running mean 0, variance 1). The same
    /// `from_weights` code then builds a randomly initialised module of exactly the loaded
    /// layout — what a run folder rebuilds before loading its checkpoint into it.
    pub fn random(device: &Device) -> Self {
        let store = Store { path: PathBuf::from("<random init>"), bytes: Vec::new(), tensors: HashMap::new(), random: true };
        Self { store: Arc::new(store), prefix: String::new(), device: device.clone() }
    }

    /// A view whose keys are prefixed with `name.` (candle's `VarBuilder::pp`).
    pub fn pp(&self, name: impl AsRef<str>) -> Self {
        Self { store: self.store.clone(), prefix: self.key(name.as_ref()), device: self.device.clone() }
    }

    /// The file these weights come from.
    pub fn path(&self) -> &Path {
        &self.store.path
    }

    /// The current key prefix (empty at the root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The device tensors are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The full key of `name` under the current prefix.
    pub fn key(&self, name: &str) -> String {
        match (self.prefix.is_empty(), name.is_empty()) {
            (true, _) => name.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}.{name}", self.prefix),
        }
    }

    /// Whether `name` (under the current prefix) is in the file.
    pub fn contains(&self, name: &str) -> bool {
        self.store.tensors.contains_key(&self.key(name))
    }

    /// The stored shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.store.tensors.get(&self.key(name)).map(|e| e.shape.as_slice())
    }

    /// All full keys in the file (unscoped), sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut k: Vec<&str> = self.store.tensors.keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    fn entry(&self, name: &str, expected: Option<&[usize]>) -> Result<(String, &Entry), LoadError> {
        let key = self.key(name);
        let e = self.store.tensors.get(&key).ok_or_else(|| LoadError::Missing { path: self.store.path.clone(), key: key.clone() })?;
        if let Some(expected) = expected
            && e.shape != expected
        {
            return Err(LoadError::Shape { path: self.store.path.clone(), key, found: e.shape.clone(), expected: expected.to_vec() });
        }
        Ok((key, e))
    }

    fn dtype_err(&self, key: String, dtype: Dtype, expected: &'static str) -> LoadError {
        LoadError::Dtype { path: self.store.path.clone(), key, dtype: format!("{dtype:?}"), expected }
    }

    /// The values of `name` as `f32` (row-major) and its shape; `expected` (if given) must
    /// match the stored shape. Converts `f32`, `f16`, `bf16` and `f64`.
    pub fn get_f32_vec(&self, name: &str, expected: Option<&[usize]>) -> Result<(Vec<f32>, Vec<usize>), LoadError> {
        let (key, e) = self.entry(name, expected)?;
        let b = &self.store.bytes[e.start..e.end];
        let v: Vec<f32> = match e.dtype {
            Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => b.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
            Dtype::BF16 => b.chunks_exact(2).map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)).collect(),
            Dtype::F64 => b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            d => return Err(self.dtype_err(key, d, "a float dtype (f32, f16, bf16, f64)")),
        };
        Ok((v, e.shape.clone()))
    }

    /// The values of integer tensor `name` as `i64` and its shape (`i64`, `i32`, `i16`, `i8`,
    /// `u8`, `u16`, `u32`, `bool` are accepted).
    pub fn get_i64_vec(&self, name: &str, expected: Option<&[usize]>) -> Result<(Vec<i64>, Vec<usize>), LoadError> {
        let (key, e) = self.entry(name, expected)?;
        let b = &self.store.bytes[e.start..e.end];
        let v: Vec<i64> = match e.dtype {
            Dtype::I64 => b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(),
            Dtype::I32 => b.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect(),
            Dtype::U32 => b.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap()) as i64).collect(),
            Dtype::I16 => b.chunks_exact(2).map(|c| i16::from_le_bytes(c.try_into().unwrap()) as i64).collect(),
            Dtype::U16 => b.chunks_exact(2).map(|c| u16::from_le_bytes(c.try_into().unwrap()) as i64).collect(),
            Dtype::I8 => b.iter().map(|&x| x as i8 as i64).collect(),
            Dtype::U8 | Dtype::BOOL => b.iter().map(|&x| x as i64).collect(),
            d => return Err(self.dtype_err(key, d, "an integer dtype")),
        };
        Ok((v, e.shape.clone()))
    }

    /// Float tensor `name`, which must have shape `shape`, as `f32` on this view's device.
    pub fn get<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>, LoadError> {
        if self.store.random {
            return Ok(Tensor::random(shape, burn::tensor::Distribution::Normal(0.0, 0.02), &self.device));
        }
        let (v, _) = self.get_f32_vec(name, Some(&shape))?;
        Ok(Tensor::from_data(TensorData::new(v, shape), &self.device))
    }

    /// Integer tensor `name`, which must have shape `shape`.
    pub fn get_int<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D, Int>, LoadError> {
        let (v, _) = self.get_i64_vec(name, Some(&shape))?;
        Ok(Tensor::from_data(TensorData::new(v, shape), &self.device))
    }

    /// A [`Linear`] from PyTorch's `name.weight` `[d_out, d_in]` (transposed to burn's
    /// `[d_in, d_out]`) and, if `bias`, `name.bias` `[d_out]`.
    pub fn linear(&self, name: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear, LoadError> {
        let w = self.pp(name);
        let weight = w.get("weight", [d_out, d_in])?.transpose();
        let bias = if bias { Some(Param::from_tensor(w.get("bias", [d_out])?)) } else { None };
        Ok(Linear::new(Param::from_tensor(weight), bias))
    }

    /// A [`LayerNorm`] of size `d` from `name.weight`/`name.bias` (falls back to the legacy
    /// `name.gamma`/`name.beta` names of old BERT checkpoints).
    pub fn layer_norm(&self, name: &str, d: usize, epsilon: f64) -> Result<LayerNorm, LoadError> {
        let w = self.pp(name);
        let (gn, bn) = if !w.contains("weight") && w.contains("gamma") { ("gamma", "beta") } else { ("weight", "bias") };
        let mut ln = LayerNormConfig::new(d).with_epsilon(epsilon).init(&self.device);
        if self.store.random {
            return Ok(ln);
        }
        ln.gamma = Param::from_tensor(w.get(gn, [d])?);
        ln.beta = Some(Param::from_tensor(w.get(bn, [d])?));
        Ok(ln)
    }

    /// An [`Embedding`] table `name.weight` `[n, d]`.
    pub fn embedding(&self, name: &str, n: usize, d: usize) -> Result<Embedding, LoadError> {
        Ok(Embedding { weight: Param::from_tensor(self.pp(name).get("weight", [n, d])?) })
    }

    /// A [`Conv2d`] from PyTorch's `name.weight` `[c_out, c_in / groups, k, k]` (same layout in
    /// burn) and, if `bias`, `name.bias`. Square kernel, symmetric zero padding `padding`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d(
        &self,
        name: &str,
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        padding: usize,
        groups: usize,
        bias: bool,
    ) -> Result<Conv2d, LoadError> {
        let [c_in, c_out] = channels;
        if groups == 0 || c_in % groups != 0 || c_out % groups != 0 {
            return Err(LoadError::Config {
                path: self.store.path.clone(),
                reason: format!("conv '{}': channels {c_in}->{c_out} not divisible by groups {groups}", self.key(name)),
            });
        }
        let w = self.pp(name);
        let weight = w.get("weight", [c_out, c_in / groups, kernel, kernel])?;
        let bias = if bias { Some(Param::from_tensor(w.get("bias", [c_out])?)) } else { None };
        Ok(Conv2d {
            weight: Param::from_tensor(weight),
            bias,
            stride: [stride, stride],
            kernel_size: [kernel, kernel],
            dilation: [1, 1],
            groups,
            padding: PaddingConfig2d::Explicit(padding, padding, padding, padding),
        })
    }

    /// A [`BatchNorm`] of `c` channels from PyTorch's `name.{weight,bias,running_mean,running_var}`
    /// (`num_batches_tracked` is ignored). `momentum` is PyTorch's default 0.1.
    pub fn batch_norm(&self, name: &str, c: usize, epsilon: f64) -> Result<BatchNorm, LoadError> {
        let w = self.pp(name);
        let mut bn = BatchNormConfig::new(c).with_epsilon(epsilon).with_momentum(0.1).init(&self.device);
        if self.store.random {
            return Ok(bn);
        }
        bn.gamma = Param::from_tensor(w.get("weight", [c])?);
        bn.beta = Param::from_tensor(w.get("bias", [c])?);
        bn.running_mean = RunningState::new(w.get("running_mean", [c])?);
        bn.running_var = RunningState::new(w.get("running_var", [c])?);
        Ok(bn)
    }
}

/// IEEE 754 half → single precision (exact; handles subnormals, infinities and NaN).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // subnormal: value = m * 2^-24; normalise
            let v = m as f32 * (1.0 / (1u32 << 24) as f32);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    fn write(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> PathBuf {
        let views: Vec<(String, TensorView)> = tensors.iter().map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
        let bytes = safetensors::serialize(views, None).unwrap();
        let dir = std::env::temp_dir().join(format!("mmfuse-pretrained-{}-{}", std::process::id(), tensors.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("model.safetensors");
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn f16_and_bf16_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
        let d = Device::flex();
        let half: Vec<u8> = [0x3c00u16, 0xc000, 0x3800].iter().flat_map(|x| x.to_le_bytes()).collect();
        let bf: Vec<u8> = [0x3f80u16, 0xc040].iter().flat_map(|x| x.to_le_bytes()).collect();
        let p = write(&[("a.h", Dtype::F16, vec![3], half), ("a.b", Dtype::BF16, vec![2], bf)]);
        let w = Weights::from_safetensors(&p, &d).unwrap().pp("a");
        assert_eq!(w.get::<1>("h", [3]).unwrap().into_data().try_to_vec::<f32>().unwrap(), vec![1.0, -2.0, 0.5]);
        assert_eq!(w.get::<1>("b", [2]).unwrap().into_data().try_to_vec::<f32>().unwrap(), vec![1.0, -3.0]);
    }

    #[test]
    fn errors_name_file_key_and_shapes() {
        let d = Device::flex();
        let p = write(&[
            ("encoder.layer.0.q.weight", Dtype::F32, vec![2, 3], f32_bytes(&[1., 2., 3., 4., 5., 6.])),
            ("encoder.layer.0.q.bias", Dtype::F32, vec![2], f32_bytes(&[0.5, -0.5])),
            ("ids", Dtype::I64, vec![1], 7i64.to_le_bytes().to_vec()),
        ]);
        let w = Weights::from_safetensors(&p, &d).unwrap();
        let l = w.pp("encoder").pp("layer.0");
        let e = l.get::<2>("q.weight", [3, 3]).unwrap_err().to_string();
        assert!(e.ends_with("model.safetensors: tensor 'encoder.layer.0.q.weight' has shape [2, 3], expected [3, 3]"), "{e}");
        let e = l.linear("k", 3, 2, true).unwrap_err().to_string();
        assert!(e.ends_with("model.safetensors: missing tensor 'encoder.layer.0.k.weight'"), "{e}");
        let e = w.get::<1>("ids", [1]).unwrap_err().to_string();
        assert!(e.contains("'ids' has dtype I64"), "{e}");
        assert_eq!(w.get_i64_vec("ids", None).unwrap().0, vec![7]);
        // linear transposes [out, in] -> [in, out]: x=[1, 1, 1] -> [6, 15] + bias
        let lin = l.linear("q", 3, 2, true).unwrap();
        let y = lin.forward(Tensor::<2>::ones([1, 3], &d)).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(y, vec![6.5, 14.5]);
        let bad = std::env::temp_dir().join(format!("mmfuse-pretrained-bad-{}.safetensors", std::process::id()));
        std::fs::write(&bad, b"not a safetensors file").unwrap();
        let e = Weights::from_safetensors(&bad, &d).unwrap_err().to_string();
        assert!(e.contains("mmfuse-pretrained-bad") && e.contains("not a valid safetensors file"), "{e}");
        let e = Weights::from_safetensors("/nonexistent/x.safetensors", &d).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/x.safetensors:"), "{e}");
    }
}
