//! Linear-chain conditional random field (Lafferty et al., 2001) over tag sequences: the MNER
//! head of MuSE and of BERT-CRF taggers.
//!
//! Paper: Lafferty, McCallum & Pereira, "Conditional Random Fields: Probabilistic Models for Segmenting and Labeling
//! Sequence Data" (ICML 2001). In MuSE: the fused embedding `F_e` goes into a CRF layer for MNER, §5.1 of the MuSE
//! reading notes, `shared/seeds/001_*`; shared/METHODS.md §1 "Heads".
//!
//! Scores a tag path `y` of a sequence with emissions `E` (`[L, T]`) as
//! `start[y_0] + Σ_t E[t, y_t] + Σ_{t>0} trans[y_{t-1}, y_t] + end[y_last]`. Training minimises
//! the negative log-likelihood `log Z − score(y)`, with `log Z` from the forward algorithm;
//! decoding is Viterbi. Sequences are left-aligned: `mask` is true on a prefix of each row
//! (callers compact word-piece sequences to one position per word first).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Bool, Device, Distribution, Int, Tensor};

/// Configuration of [`Crf`].
#[derive(Config, Debug)]
pub struct CrfConfig {
    /// Number of tags.
    pub n_tags: usize,
}

/// Transition, start and end scores.
#[derive(Module, Debug)]
pub struct Crf {
    /// `trans[i, j]`: score of tag `j` following tag `i`.
    pub transitions: Param<Tensor<2>>,
    pub start: Param<Tensor<1>>,
    pub end: Param<Tensor<1>>,
}

impl CrfConfig {
    /// Small uniform init in [-0.1, 0.1] (as pytorch-crf).
    pub fn init(&self, device: &Device) -> Crf {
        let t = self.n_tags;
        let u = Distribution::Uniform(-0.1, 0.1);
        Crf {
            transitions: Param::from_tensor(Tensor::random([t, t], u, device)),
            start: Param::from_tensor(Tensor::random([t], u, device)),
            end: Param::from_tensor(Tensor::random([t], u, device)),
        }
    }
}

fn logsumexp<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let m = x.clone().max_dim(dim).detach();
    (x - m.clone()).exp().sum_dim(dim).log() + m
}

impl Crf {
    /// Mean negative log-likelihood over the batch. `emissions` `[B, L, T]`, `tags` `[B, L]`,
    /// `mask` `[B, L]` (true on a prefix of each row; rows with no true position contribute 0).
    pub fn nll(&self, emissions: Tensor<3>, tags: Tensor<2, Int>, mask: Tensor<2, Bool>) -> Tensor<1> {
        let [b, l, t] = emissions.dims();
        let device = emissions.device();
        let maskf = mask.clone().float(); // [B, L]
        let trans = self.transitions.val();
        // gold path score
        let emit_gold = emissions.clone().gather(2, tags.clone().unsqueeze_dim::<3>(2)).reshape([b, l]);
        let mut score = (emit_gold * maskf.clone()).sum_dim(1).reshape([b]);
        let first = tags.clone().slice([0..b, 0..1]).reshape([b]);
        score = score + self.start.val().select(0, first);
        if l > 1 {
            let prev = tags.clone().slice([0..b, 0..l - 1]).reshape([b * (l - 1)]);
            let next = tags.clone().slice([0..b, 1..l]).reshape([b * (l - 1)]);
            let flat = prev.mul_scalar(t as i64) + next;
            let tr = trans.clone().reshape([t * t]).select(0, flat).reshape([b, l - 1]);
            let m = maskf.clone().slice([0..b, 1..l]);
            score = score + (tr * m).sum_dim(1).reshape([b]);
        }
        // last real position of each row
        let lengths = mask.clone().int().sum_dim(1).reshape([b]);
        let last_idx = (lengths.clone() - 1).clamp_min(0);
        let last_tag = tags.gather(1, last_idx.unsqueeze_dim::<2>(1)).reshape([b]);
        score = score + self.end.val().select(0, last_tag);
        // forward algorithm
        let mut alpha = self.start.val().unsqueeze_dim::<2>(0) + emissions.clone().slice([0..b, 0..1, 0..t]).reshape([b, t]);
        for step in 1..l {
            let e = emissions.clone().slice([0..b, step..step + 1, 0..t]).reshape([b, t]);
            let cand = alpha.clone().unsqueeze_dim::<3>(2) + trans.clone().unsqueeze_dim::<3>(0); // [B, T, T]
            let next = logsumexp(cand, 1).reshape([b, t]) + e;
            let m = mask.clone().slice([0..b, step..step + 1]).reshape([b, 1]).expand([b, t]);
            alpha = next.mask_where(m.bool_not(), alpha);
        }
        let log_z = logsumexp(alpha + self.end.val().unsqueeze_dim::<2>(0), 1).reshape([b]);
        let has_any = lengths.greater_elem(0).float();
        let nll = (log_z - score) * has_any.clone();
        let _ = device;
        nll.sum() / has_any.sum().clamp_min(1.0)
    }

    /// Viterbi decoding on the host: best tag path of each row (length = row's mask count).
    pub fn decode(&self, emissions: Tensor<3>, mask: Tensor<2, Bool>) -> Vec<Vec<usize>> {
        let [b, l, t] = emissions.dims();
        let e = emissions.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 emissions");
        // read as integers: a GPU backend stores booleans as u32, not as Rust `bool`s
        let m: Vec<bool> = mask.int().into_data().convert::<i32>().try_to_vec::<i32>().expect("int mask").into_iter().map(|v| v != 0).collect();
        let trans = self.transitions.val().into_data().convert::<f32>().try_to_vec::<f32>().expect("f32");
        let start = self.start.val().into_data().convert::<f32>().try_to_vec::<f32>().expect("f32");
        let end = self.end.val().into_data().convert::<f32>().try_to_vec::<f32>().expect("f32");
        (0..b)
            .map(|i| {
                let len = (0..l).take_while(|&p| m[i * l + p]).count();
                let em = &e[i * l * t..(i * l + len) * t];
                viterbi(em, len, t, &trans, &start, &end)
            })
            .collect()
    }
}

/// Viterbi over one sequence: `em` `[len, t]` row-major.
pub fn viterbi(em: &[f32], len: usize, t: usize, trans: &[f32], start: &[f32], end: &[f32]) -> Vec<usize> {
    if len == 0 {
        return vec![];
    }
    let mut score: Vec<f32> = (0..t).map(|j| start[j] + em[j]).collect();
    let mut back = vec![0usize; len * t];
    let mut next = vec![0f32; t];
    for p in 1..len {
        for j in 0..t {
            let (mut best, mut arg) = (f32::NEG_INFINITY, 0);
            for i in 0..t {
                let s = score[i] + trans[i * t + j];
                if s > best {
                    best = s;
                    arg = i;
                }
            }
            next[j] = best + em[p * t + j];
            back[p * t + j] = arg;
        }
        std::mem::swap(&mut score, &mut next);
    }
    let mut last = 0;
    for j in 0..t {
        if score[j] + end[j] > score[last] + end[last] {
            last = j;
        }
    }
    let mut path = vec![last; len];
    for p in (1..len).rev() {
        path[p - 1] = back[p * t + path[p]];
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn path_score(em: &[f32], path: &[usize], t: usize, tr: &[f32], st: &[f32], en: &[f32]) -> f64 {
        let mut s = (st[path[0]] + en[*path.last().unwrap()]) as f64;
        for (p, &y) in path.iter().enumerate() {
            s += em[p * t + y] as f64;
            if p > 0 {
                s += tr[path[p - 1] * t + y] as f64;
            }
        }
        s
    }

    fn all_paths(len: usize, t: usize) -> Vec<Vec<usize>> {
        let mut out = vec![vec![]];
        for _ in 0..len {
            out = out
                .into_iter()
                .flat_map(|p| {
                    (0..t).map(move |y| {
                        let mut q = p.clone();
                        q.push(y);
                        q
                    })
                })
                .collect();
        }
        out
    }

    #[test]
    fn nll_and_viterbi_match_brute_force() {
        let device = Device::flex();
        device.seed(7);
        let (b, l, t) = (3, 4, 3);
        let crf = CrfConfig::new(t).init(&device);
        // make transitions matter
        let crf = Crf { transitions: Param::from_tensor(crf.transitions.val().mul_scalar(10.0)), ..crf };
        let em: Vec<f32> = (0..b * l * t).map(|i| ((i * 7919 % 23) as f32 / 7.0) - 1.5).collect();
        let tags: Vec<i64> = vec![0, 1, 2, 1, 2, 2, 0, 0, 1, 0, 0, 0];
        let lens = [4usize, 2, 1];
        let mask: Vec<bool> = (0..b * l).map(|i| i % l < lens[i / l]).collect();
        let tr = crf.transitions.val().into_data().try_to_vec::<f32>().unwrap();
        let st = crf.start.val().into_data().try_to_vec::<f32>().unwrap();
        let en = crf.end.val().into_data().try_to_vec::<f32>().unwrap();
        let mut expected = 0.0f64;
        for i in 0..b {
            let e = &em[i * l * t..(i * l + lens[i]) * t];
            let paths = all_paths(lens[i], t);
            let scores: Vec<f64> = paths.iter().map(|p| path_score(e, p, t, &tr, &st, &en)).collect();
            let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let log_z = mx + scores.iter().map(|s| (s - mx).exp()).sum::<f64>().ln();
            let gold: Vec<usize> = (0..lens[i]).map(|p| tags[i * l + p] as usize).collect();
            expected += log_z - path_score(e, &gold, t, &tr, &st, &en);
            // Viterbi = brute-force argmax
            let best = paths.iter().zip(&scores).max_by(|a, b| a.1.partial_cmp(b.1).unwrap()).unwrap().0.clone();
            let got = viterbi(e, lens[i], t, &tr, &st, &en);
            assert_eq!(got, best, "row {i}");
        }
        expected /= b as f64;
        let emissions = Tensor::<3>::from_data(TensorData::new(em.clone(), [b, l, t]), &device);
        let nll = crf
            .nll(
                emissions.clone(),
                Tensor::from_data(TensorData::new(tags, [b, l]), &device),
                Tensor::from_data(TensorData::new(mask.clone(), [b, l]), &device),
            )
            .into_scalar::<f32>() as f64;
        assert!((nll - expected).abs() < 1e-4, "nll {nll} vs brute force {expected}");
        let decoded = crf.decode(emissions, Tensor::from_data(TensorData::new(mask, [b, l]), &device));
        assert_eq!(decoded.iter().map(|p| p.len()).collect::<Vec<_>>(), lens.to_vec());
    }
}
