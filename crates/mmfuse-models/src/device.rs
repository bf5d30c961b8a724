//! The one place where the compute device, and so the backend, is chosen.
//!
//! burn 0.22 dispatches on the [`Device`] at run time: model code is written once against
//! `Tensor<D, K>` and runs on whatever device its tensors live on. mmfuse supports:
//! - `cpu` (default): burn's `flex` backend, pure Rust, SIMD, multi-threaded — needs nothing
//!   installed;
//! - `cuda[:N]`: burn's CubeCL CUDA backend (kernels compiled at run time), only when mmfuse is
//!   built with the `cuda` cargo feature.

use burn::tensor::Device;
use std::fmt;

/// A device name as given on the command line (`cpu`, `cuda`, `cuda:1`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
#[derive(Default)]
pub enum DeviceSpec {
    /// burn's pure-Rust `flex` CPU backend.
    #[default]
    Cpu,
    /// A CUDA GPU by index (feature `cuda`).
    Cuda(usize),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::str::FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" | "flex" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(i) => i.parse().map(DeviceSpec::Cuda).map_err(|_| format!("bad CUDA device index in '{s}'; expected e.g. cuda:0")),
                None => Err(format!("unknown device '{s}'; expected cpu, cuda or cuda:N")),
            },
        }
    }
}

impl DeviceSpec {
    /// The burn device (without autodiff) for this spec, or a clear error when the backend was
    /// not compiled in.
    pub fn device(&self) -> Result<Device, String> {
        match self {
            DeviceSpec::Cpu => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(i) => Ok(Device::cuda(*i)),
            #[cfg(not(feature = "cuda"))]
            DeviceSpec::Cuda(_) => Err(format!(
                "device '{self}' needs the CUDA backend, which this mmfuse binary was built without; \
                 rebuild with `cargo install --path crates/mmfuse --features cuda` (needs the CUDA driver at run time)"
            )),
        }
    }

    /// Whether the backend behind this spec was compiled in.
    pub fn available(&self) -> bool {
        self.device().is_ok()
    }
}

/// Seed burn's random generator on `device` (parameter init, dropout) for reproducible runs.
pub fn seed(device: &Device, seed: u64) {
    device.seed(seed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("CUDA:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert!("tpu".parse::<DeviceSpec>().is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let err = DeviceSpec::Cuda(0).device().unwrap_err();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
