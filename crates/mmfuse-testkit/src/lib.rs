//! Test support shared by the mmfuse crates' tests (a dev-dependency only): the byte-edit model
//! of the fuzz tests (`tests/fuzz*.rs`) — random flips, insertions, deletions and repeated runs
//! of a seed file, then an optional truncation — and their case count; and the GPU device the
//! GPU tests run on ([`test_gpu`]); and an HTTP load generator for the server ([`load`]).
//!
//! What this crate must not do: be a dependency of anything but tests.

pub mod load;

pub use proptest;
use proptest::prelude::*;

/// Edits of a seed: `(position, byte, kind)` with kind 0 flip, 1 insert, 2 delete, 3 repeat a
/// run of up to 64 bytes; then an optional truncation.
pub type Edits = (Vec<(usize, u8, u8)>, Option<usize>);

/// Up to 12 random edits and maybe a truncation.
pub fn edits() -> impl Strategy<Value = Edits> {
    (prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 0..12), prop::option::of(any::<usize>()))
}

/// `seed` with `edits` applied (positions taken modulo the current length).
pub fn mutate(seed: &[u8], (ops, cut): &Edits) -> Vec<u8> {
    let mut b = seed.to_vec();
    for &(pos, byte, kind) in ops {
        let p = pos % b.len().max(1);
        match kind {
            0 if !b.is_empty() => b[p] ^= byte | 1,
            1 => b.insert(p.min(b.len()), byte),
            2 if !b.is_empty() => {
                b.remove(p);
            }
            3 if !b.is_empty() => {
                let end = (p + 1 + byte as usize % 64).min(b.len());
                let run = b[p..end].to_vec();
                b.splice(p..p, run);
            }
            _ => {}
        }
    }
    if let Some(c) = cut {
        b.truncate(c % (b.len() + 1));
    }
    b
}

/// The fuzz tests' configuration: `PROPTEST_CASES` cases per test (default 256, what CI runs),
/// nothing persisted.
pub fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The GPU device the GPU tests run on, without autodiff, with its name: `gpu:software` (Mesa's
/// lavapipe, a Vulkan driver on the CPU) unless `MMFUSE_TEST_GPU` names another (`gpu`, `gpu:0`).
///
/// `None`, after a visible note, when this build has no `wgpu` feature or the machine no adapter;
/// with `MMFUSE_REQUIRE_GPU` set (the README's test command sets it where it installed lavapipe)
/// either is a failure instead.
pub fn test_gpu(what: &str) -> Option<(burn::tensor::Device, mmfuse_kernels::DeviceSpec)> {
    use mmfuse_kernels::device::{DeviceSpec, GPU_COMPILED, GpuAdapter};
    let spec: DeviceSpec = match std::env::var("MMFUSE_TEST_GPU") {
        Ok(s) => s.parse().expect("MMFUSE_TEST_GPU"),
        Err(_) => DeviceSpec::Gpu(GpuAdapter::Software),
    };
    let required = std::env::var_os("MMFUSE_REQUIRE_GPU").is_some();
    if !GPU_COMPILED {
        assert!(!required, "MMFUSE_REQUIRE_GPU is set but this test was built without the `wgpu` feature");
        eprintln!("NOTE: {what} skipped: built without the `wgpu` feature (cargo test --features mmfuse/wgpu)");
        return None;
    }
    match spec.device() {
        Ok(d) => {
            eprintln!("{what} on {spec}: {}", spec.adapter_name().unwrap_or_default());
            Some((d, spec))
        }
        Err(e) if !required => {
            eprintln!("NOTE: {what} skipped: {e}");
            None
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_by_hand() {
        let seed = b"abcdef";
        assert_eq!(mutate(seed, &(vec![(1, 0x20, 0)], None)), b"aCcdef"); // b ^ (0x20 | 1)
        assert_eq!(mutate(seed, &(vec![(9, b'x', 1)], None)), b"abcxdef");
        assert_eq!(mutate(seed, &(vec![(0, 0, 2)], Some(3))), b"bcd");
        assert_eq!(mutate(seed, &(vec![(4, 1, 3)], None)), b"abcdefef");
        assert_eq!(mutate(b"", &(vec![(3, 7, 0), (3, 7, 2)], Some(5))), b"");
    }
}
