//! MIM — Multimodal Information Modulation (IEEE TMM 2023) for word-aligned text / audio /
//! video features: unimodal purification gates (UPN) and knowledge guidance between modalities
//! (KGS). See `shared/METHODS.md` §3.
//!
//! Paper: Zeng, Mai, Yan & Hu, IEEE TMM 2023, doi:10.1109/tmm.2023.3293335 (abstract in `shared/seeds/003_*`); our
//! sources give no section or equation numbers, so components are named as in the paper: UPN (Unimodal Purification
//! Network) and KGS (Knowledge Guidance Scheme).
//!
//! - [`encoders`]: text (encoder + Conv1d), audio and video (Conv1d + pre-LN Transformer).
//! - [`gate`]: the HardConcrete gate (straight-through hard mask, L0 penalty, deterministic at
//!   evaluation unless `stochastic_eval`).
//! - [`purification`]: the UPN around the gate (BiLSTM, step scores, time-axis MLP).
//! - [`guidance`]: intra- and inter-modal guidance losses and their weights α.
//! - [`model`]: [`Mim`] and its two losses for the two-step optimisation.

pub mod encoders;
pub mod gate;
pub mod guidance;
pub mod model;
pub mod purification;

pub use gate::{HardConcrete, HardConcreteConfig};
pub use guidance::{inter_modal, intra_modal, kd_weights};
pub use model::{Mim, MimConfig, MimForward, MimFusion, MimLosses, Purifiers};
