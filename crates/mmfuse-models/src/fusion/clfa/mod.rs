//! CLFA: CLIP-guided contrastive feature alignment for multimodal semantic understanding
//! (LREC-COLING 2024, [arXiv 2403.06355](https://arxiv.org/abs/2403.06355);
//! reference code <https://github.com/ChangKe123/CLFA>).
//!
//! Sources: the abstract (`shared/seeds/002_*`) and shared/METHODS.md §2 ("Encoders", "Alignment", "Fusion"); they give
//! no section or equation numbers for CLFA, so quantities are named as there (L_text, L_image, τ, α, β).
//!
//! Each encoder's token features, through a projection MLP and mean pooling, are pulled toward a
//! frozen CLIP's embedding of the SAME modality by a symmetric InfoNCE loss with in-batch
//! negatives ([`alignment::info_nce`]); since CLIP's text and image spaces are already aligned,
//! the two encoders end up in one space. A cross encoder ([`cross_encoder`]) then fuses text and
//! image tokens for the task: `L = α·(L_text + L_image) + β·CE(task)` ([`model`]).
//!
//! What differs from the paper / released code:
//! - the teacher embeddings are not computed here: they come precomputed with the batch
//!   (`Batch::teacher`, `[B, P]` each), as the reference computes CLIP once offline;
//! - the optional OCR stream (image text through the same BERT and text MLP, and a
//!   text-to-OCR cross-attention per layer) is not implemented;
//! - no SenticNet affective-lexicon attention biases (the knowledge-free setting);
//! - padding is masked everywhere (attention via an explicit additive bias, pooling, the
//!   alignment mean); image tokens carry an all-true mask;
//! - the classification head is Linear(→d) → ReLU → dropout → Linear(→classes), where the paper
//!   uses dropout + Linear only; `Pooling::Cls` is `tanh` of position 0 without BERT's pooler
//!   Linear;
//! - α = 0 does not build the projection MLPs at all (no dead parameters, no teacher needed);
//! - the concat/mean and co-attention aggregations the paper compares against are available as
//!   [`Fuser::ConcatMean`] and [`Fuser::CoAttention`].

pub mod alignment;
pub mod cross_encoder;
pub mod model;

pub use alignment::{info_nce, l2_normalise};
pub use cross_encoder::{CrossEncoder, CrossEncoderConfig, CrossEncoderLayer, MaskedAttention};
pub use model::{Clfa, ClfaConfig, ClfaHead, ClfaSettings, Fuser, Pooling, Projection};
