//! Show-Attend-Tell captioning decoder (Xu et al., 2015, <https://arxiv.org/abs/1502.03044>):
//! MuSE's image→text regularising decoder (L_it). An LSTM that, at every step, attends over the
//! image tokens with additive ("soft") attention, gates the attended context by
//! `σ(f_β(h))`, and predicts the next word of the caption under teacher forcing.
//!
//! In MuSE, "Exchanging-based Multimodal Fusion with Transformer" (arXiv 2309.02190): `T̂ = TextDecoder(I_n)`, eq. (6),
//! with `I_n = MLP(I_e + N_i(0,1))`, trained by L_it, the image-captioning loss (§4.1 of the MuSE reading notes,
//! `shared/seeds/001_*`; NIC-Att in their §5 setup); shared/METHODS.md §1 "Regularising decoders".
//!
//! Per step `t` (inputs are the caption's tokens `0..T−1`, targets its tokens `1..T`):
//!
//! ```text
//! e_n  = full_att(relu(enc_att(a_n) + dec_att(h_{t−1})))      α_t = softmax_n(e)
//! z_t  = σ(f_β(h_{t−1})) ⊙ Σ_n α_{t,n} a_n
//! h_t, c_t = LSTMCell([E y_t; z_t], (h_{t−1}, c_{t−1}))       (gates i, f, g, o as torch)
//! logits_t = fc(dropout(h_t))
//! ```
//!
//! with `h_0 = init_h(mean_n a_n)`, `c_0 = init_c(mean_n a_n)`. Loss: cross-entropy averaged over
//! the real target tokens, plus the "doubly stochastic" attention penalty
//! `alpha_c · mean_b Σ_n (1 − Σ_t α_{t,n})²` over the real decoding steps (the paper's eq. 14).
//!
//! The reference code (sgrvinod's PyTorch tutorial implementation, which MuSE's code follows)
//! differs in that it averages the penalty over the image tokens as well
//! (`((1 − α.sum(1))²).mean()`, i.e. the paper's penalty divided by N): offered as
//! `reference_compat`. It also sorts the batch by length and shrinks it step by step; running
//! every step for every sample and masking, as here, gives the same logits at the real steps.
//! Initialisation follows the reference: embedding and output weights U(−0.1, 0.1), output bias 0.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Initializer};
use burn::tensor::activation::{log_softmax, relu, sigmoid, softmax, tanh};
use burn::tensor::{Bool, Device, Int, Tensor};
use mmfuse_kernels::{Dropout, DropoutConfig, Linear, LinearConfig};

/// Configuration of [`CaptionDecoder`] (reference values are the defaults).
#[derive(Config, Debug)]
pub struct CaptionDecoderConfig {
    /// Word vocabulary (including PAD/SOS/EOS/UNK).
    pub vocab_size: usize,
    /// Width of the image tokens.
    pub d_encoder: usize,
    /// Word embedding size (paper: 512).
    #[config(default = 512)]
    pub d_embed: usize,
    /// LSTM hidden size (paper: 512).
    #[config(default = 512)]
    pub d_hidden: usize,
    /// Additive-attention size (paper: 512).
    #[config(default = 512)]
    pub d_attention: usize,
    /// Dropout before the output layer [0.5].
    #[config(default = 0.5)]
    pub dropout: f64,
    /// Weight of the doubly stochastic attention penalty [1.0].
    #[config(default = 1.0)]
    pub alpha_c: f64,
    /// Average the attention penalty over image tokens too, as the reference code does.
    #[config(default = false)]
    pub reference_compat: bool,
}

/// The decoder (names as in the reference implementation).
#[derive(Module, Debug)]
pub struct CaptionDecoder {
    pub embedding: Embedding,
    pub encoder_att: Linear,
    pub decoder_att: Linear,
    pub full_att: Linear,
    pub init_h: Linear,
    pub init_c: Linear,
    pub f_beta: Linear,
    /// LSTM cell, input part: `[E y; z] → 4H` (gates i, f, g, o).
    pub lstm_ih: Linear,
    /// LSTM cell, recurrent part: `h → 4H`.
    pub lstm_hh: Linear,
    pub dropout: Dropout,
    pub fc: Linear,
    pub d_hidden: usize,
    pub alpha_c: f64,
    pub reference_compat: bool,
}

/// Teacher-forced outputs for captions of length `T` over `N` image tokens.
#[derive(Debug, Clone)]
pub struct CaptionOutput {
    /// Next-token logits `[B, T−1, V]` (step `t` predicts token `t + 1`).
    pub logits: Tensor<3>,
    /// Attention over the image tokens `[B, T−1, N]` (each row sums to 1).
    pub alphas: Tensor<3>,
}

impl CaptionDecoderConfig {
    pub fn init(&self, device: &Device) -> CaptionDecoder {
        let (e, d, h, a, v) = (self.d_embed, self.d_encoder, self.d_hidden, self.d_attention, self.vocab_size);
        let uniform = Initializer::Uniform { min: -0.1, max: 0.1 };
        let mut fc = LinearConfig::new(h, v).with_initializer(uniform.clone()).init(device);
        fc.bias = Some(Param::from_tensor(Tensor::zeros([v], device)));
        CaptionDecoder {
            embedding: EmbeddingConfig::new(v, e).with_initializer(uniform).init(device),
            encoder_att: LinearConfig::new(d, a).init(device),
            decoder_att: LinearConfig::new(h, a).init(device),
            full_att: LinearConfig::new(a, 1).init(device),
            init_h: LinearConfig::new(d, h).init(device),
            init_c: LinearConfig::new(d, h).init(device),
            f_beta: LinearConfig::new(h, d).init(device),
            lstm_ih: LinearConfig::new(e + d, 4 * h).init(device),
            lstm_hh: LinearConfig::new(h, 4 * h).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            fc,
            d_hidden: h,
            alpha_c: self.alpha_c,
            reference_compat: self.reference_compat,
        }
    }
}

impl CaptionDecoder {
    /// One LSTM step (torch `LSTMCell`): `x` `[B, in]`, state `[B, H]` each → new `(h, c)`.
    pub fn lstm_cell(&self, x: Tensor<2>, h: Tensor<2>, c: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let hd = self.d_hidden;
        let gates = self.lstm_ih.forward(x) + self.lstm_hh.forward(h);
        let i = sigmoid(gates.clone().narrow(1, 0, hd));
        let f = sigmoid(gates.clone().narrow(1, hd, hd));
        let g = tanh(gates.clone().narrow(1, 2 * hd, hd));
        let o = sigmoid(gates.narrow(1, 3 * hd, hd));
        let c = f * c + i * g;
        (o * tanh(c.clone()), c)
    }

    /// Teacher forcing: `captions` `[B, T]` (`[SOS w₁ … w_k EOS PAD …]`), `image_tokens`
    /// `[B, N, d_encoder]` → logits `[B, T−1, V]` and attention `[B, T−1, N]`. Step `t` reads
    /// tokens `0..=t` only.
    pub fn forward(&self, captions: Tensor<2, Int>, image_tokens: Tensor<3>) -> CaptionOutput {
        let [b, t] = captions.dims();
        let [_, n, d] = image_tokens.dims();
        assert!(t >= 2, "captions need at least two tokens (SOS and one target)");
        let emb = self.embedding.forward(captions); // [B, T, E]
        let mean = image_tokens.clone().mean_dim(1).reshape([b, d]);
        let mut h = self.init_h.forward(mean.clone());
        let mut c = self.init_c.forward(mean);
        let att_enc = self.encoder_att.forward(image_tokens.clone()); // [B, N, A], once for all steps
        let [_, _, e] = emb.dims();
        let mut logits = Vec::with_capacity(t - 1);
        let mut alphas = Vec::with_capacity(t - 1);
        for step in 0..t - 1 {
            let att_dec = self.decoder_att.forward(h.clone()).unsqueeze_dim::<3>(1); // [B, 1, A]
            let scores = self.full_att.forward(relu(att_enc.clone() + att_dec)).reshape([b, n]);
            let alpha = softmax(scores, 1); // [B, N]
            let context = alpha.clone().unsqueeze_dim::<3>(1).matmul(image_tokens.clone()).reshape([b, d]);
            let gate = sigmoid(self.f_beta.forward(h.clone()));
            let x = Tensor::cat(vec![emb.clone().narrow(1, step, 1).reshape([b, e]), gate * context], 1);
            (h, c) = self.lstm_cell(x, h, c);
            logits.push(self.fc.forward(self.dropout.forward(h.clone())));
            alphas.push(alpha);
        }
        CaptionOutput { logits: Tensor::stack(logits, 1), alphas: Tensor::stack(alphas, 1) }
    }

    /// Cross-entropy over the real targets (`mask[:, 1..]`, true at real tokens) plus the
    /// attention penalty over the real steps, from outputs of [`forward`](Self::forward). Scalar
    /// `[1]`.
    pub fn loss_from_output(&self, out: &CaptionOutput, captions: Tensor<2, Int>, mask: Tensor<2, Bool>) -> Tensor<1> {
        let [b, t] = captions.dims();
        let [_, _, n] = out.alphas.dims();
        let targets = captions.narrow(1, 1, t - 1); // [B, T−1]
        let real = mask.narrow(1, 1, t - 1).float(); // [B, T−1]
        let logp = log_softmax(out.logits.clone(), 2).gather(2, targets.unsqueeze_dim::<3>(2)).reshape([b, t - 1]);
        let n_real = real.clone().sum().clamp_min(1.0);
        let ce = (logp * real.clone()).sum().neg() / n_real;
        let attended = (out.alphas.clone() * real.unsqueeze_dim::<3>(2)).sum_dim(1).reshape([b, n]); // Σ_t α over real steps
        let penalty = attended.neg().add_scalar(1.0).powi_scalar(2);
        let penalty = if self.reference_compat { penalty.mean() } else { penalty.sum_dim(1).mean() };
        ce + penalty.mul_scalar(self.alpha_c)
    }

    /// [`forward`](Self::forward) then [`loss_from_output`](Self::loss_from_output).
    pub fn loss(&self, captions: Tensor<2, Int>, mask: Tensor<2, Bool>, image_tokens: Tensor<3>) -> Tensor<1> {
        let out = self.forward(captions.clone(), image_tokens);
        self.loss_from_output(&out, captions, mask)
    }
}
