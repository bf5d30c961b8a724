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

/// Runs `f` on a thread of the CPU backend's compute pool (rayon's global pool, sized by
/// `RAYON_NUM_THREADS`) and returns its result.
///
/// burn-flex splits large ops (matmuls, element-wise ops over big tensors, pooling) with rayon.
/// Called from a thread outside the pool, every such op hands its work to a pool thread and
/// sleeps until it is done — a futex wake-up per op, hundreds per forward. Run on a pool thread,
/// the op starts on the calling thread and idle threads steal from it. Measured on MuSE-small
/// (`benches/muse_vs_torch.rs`, `MMFUSE_BENCH_OUTSIDE_POOL=1` gives the old behaviour): batch-1
/// latency 15–25 % lower, training steps 5–12 % faster.
///
/// `f` must not block waiting for other work that needs the pool (e.g. another thread's burn
/// ops): with one pool thread that would never finish. Wrap whole forward / backward /
/// optimiser steps, not loops that wait on data-loading threads.
pub fn on_compute_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// Runs two independent parts of one forward pass (MuSE's text and image streams) at the same
/// time on the compute pool when `device` is the CPU backend without autodiff (prediction), else
/// one after the other.
///
/// At small batches each op is too small to split well over the pool's threads (MuSE-small at
/// batch 1: 26.5 ms on one thread, 21 ms on two), while the streams are independent between
/// exchanges. Training runs them in turn: its dropout masks are drawn from the process-wide
/// device RNG, and drawing from two threads at once would make the masks depend on thread
/// timing (no reproducible runs, no exact resume).
pub fn join_streams<A: Send, B: Send>(device: &Device, a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    if is_cpu_without_autodiff(device) { rayon::join(a, b) } else { (a(), b()) }
}

/// Whether `device` is the CPU backend (`flex`), with or without autodiff: where our fused CPU
/// passes and autodiff operations (this crate's kernels) can read and write the tensors' data.
pub fn is_cpu(device: &Device) -> bool {
    device.clone().inner() == Device::flex()
}

/// Whether `device` is the CPU backend without autodiff (prediction, evaluation).
pub fn is_cpu_without_autodiff(device: &Device) -> bool {
    !device.is_autodiff() && is_cpu(device)
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

    #[test]
    fn on_compute_pool_runs_on_a_pool_thread_and_returns_the_result() {
        assert!(rayon::current_thread_index().is_none(), "the test thread is not a pool thread");
        let (inside, v) = on_compute_pool(|| (rayon::current_thread_index().is_some(), 6 * 7));
        assert!(inside);
        assert_eq!(v, 42);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let err = DeviceSpec::Cuda(0).device().unwrap_err();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
