//! One file per `mmfuse` command: its `Args` (clap) and its `run`. Each `run` parses nothing
//! and computes little: it calls the library crates and prints what they return.

pub mod clip_embed;
pub mod demo;
pub mod encode;
pub mod evaluate;
pub mod predict;
pub mod prepare_mmsd;
pub mod prepare_mosi;
pub mod prepare_mvsa;
pub mod serve;
pub mod sweep;
pub mod synth;
pub mod synth_aligned;
pub mod train;

use anyhow::Result;
use burn::tensor::Device;
use mmfuse_data::image::MissingImage;
use mmfuse_kernels::device::DeviceSpec;

/// The options every command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// Compute device: cpu (default), gpu, gpu:N or gpu:software (a build with --features wgpu), or
    /// cuda[:N] (a build with --features cuda).
    #[arg(long, global = true)]
    pub device: Option<DeviceSpec>,
    /// No progress bars; only warnings and results.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Missing or unreadable images: `error` (default: stop, naming the file), `absent` (the
    /// post has no image; the model is told so) or `reference_placeholder` (a grey image the
    /// model takes for a real one, as the reference code does); fallbacks are counted and
    /// reported. Same as --set data.missing_image=….
    #[arg(long, global = true)]
    pub missing_image: Option<MissingImage>,
}

impl Global {
    /// The `--set` overrides the global options stand for (`train.device`,
    /// `data.missing_image`).
    pub fn overrides(&self) -> Vec<String> {
        let mut o: Vec<String> = self.device.as_ref().map(|d| format!("train.device=\"{d}\"")).into_iter().collect();
        if let Some(m) = self.missing_image {
            o.push(format!("data.missing_image=\"{}\"", m.name()));
        }
        o
    }

    /// The compute device of commands that run a model outside training (default: cpu).
    pub fn device(&self) -> Result<Device> {
        self.device.clone().unwrap_or_default().device().map_err(anyhow::Error::msg)
    }
}
