//! CLFA's alignment loss: symmetric InfoNCE between a student's features and a frozen
//! teacher's (CLIP) embeddings of the same samples, with in-batch negatives.
//!
//! Paper: CLFA (CLIP-guided contrastive-learning-based feature alignment, LREC-COLING 2024, arXiv 2403.06355),
//! shared/METHODS.md §2 "Alignment": `L_m = ½·CE(softmax_j(f_i·c_j/τ), i) + ½·CE(softmax_j(c_i·f_j/τ), i)`, τ = 0.1
//! (no equation number in our sources).

use crate::heads::losses::cross_entropy;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

/// Rows of `x` `[B, P]` scaled to unit L2 norm (a zero row stays zero).
pub fn l2_normalise(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12); // [B, 1]
    x / norm
}

/// `[B, B]` logits `f_i · c_j / τ` of the L2-normalised student and (detached) teacher rows.
fn similarity_logits(student: Tensor<2>, teacher: Tensor<2>, tau: f64) -> Tensor<2> {
    let [b, p] = student.dims();
    assert_eq!(teacher.dims(), [b, p], "info_nce: student {:?} and teacher {:?} shapes differ", [b, p], teacher.dims());
    assert!(tau > 0.0, "info_nce: temperature must be positive, got {tau}");
    l2_normalise(student).matmul(l2_normalise(teacher.detach()).transpose()).div_scalar(tau)
}

/// Symmetric InfoNCE of `student` `[B, P]` against `teacher` `[B, P]` at temperature `tau`:
/// with `f_i`, `c_i` the L2-normalised rows,
/// `½·CE(softmax_j(f_i·c_j/τ), i) + ½·CE(softmax_j(c_i·f_j/τ), i)`, averaged over the batch.
/// The teacher is detached: gradients reach the student only. Returns a scalar `[1]`.
pub fn info_nce(student: Tensor<2>, teacher: Tensor<2>, tau: f64) -> Tensor<1> {
    let b = student.dims()[0];
    let device = student.device();
    let logits = similarity_logits(student, teacher, tau);
    let targets = Tensor::<1, Int>::arange(0..b as i64, &device);
    let s2t = cross_entropy(logits.clone(), targets.clone());
    let t2s = cross_entropy(logits.transpose(), targets); // c_i · f_j / τ
    (s2t + t2s).mul_scalar(0.5)
}

/// [`info_nce`] over the posts that have the modality (`present` `[B]` of 1.0 / 0.0): an absent
/// post is neither an anchor nor a negative. With every post present it equals [`info_nce`].
pub fn info_nce_present(student: Tensor<2>, teacher: Tensor<2>, tau: f64, present: Tensor<1>) -> Tensor<1> {
    let b = student.dims()[0];
    let device = student.device();
    // absent posts' columns get the attention mask's bias: exp(·) is exactly 0 in f32
    let column_bias = present.clone().neg().add_scalar(1.0).mul_scalar(crate::layers::attention::MASK_BIAS).reshape([1, b]).expand([b, b]);
    let logits = similarity_logits(student, teacher, tau);
    let eye = Tensor::<2>::from_data(TensorData::new((0..b * b).map(|k| if k / b == k % b { 1.0f32 } else { 0.0 }).collect::<Vec<_>>(), [b, b]), &device);
    let n = present.clone().sum().clamp_min(1.0);
    let side = |l: Tensor<2>| -> Tensor<1> {
        let nll = (log_softmax(l + column_bias.clone(), 1) * eye.clone()).sum_dim(1).reshape([b]).neg(); // −log p(i | i)
        (nll * present.clone()).sum() / n.clone()
    };
    (side(logits.clone()) + side(logits.transpose())).mul_scalar(0.5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn t2(v: &[f64], b: usize, p: usize, d: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), [b, p]), d)
    }

    /// The loss in f64, written out directly from the definition.
    fn reference(s: &[f64], t: &[f64], b: usize, p: usize, tau: f64) -> f64 {
        let norm = |v: &[f64]| -> Vec<Vec<f64>> {
            (0..b)
                .map(|i| {
                    let r = &v[i * p..(i + 1) * p];
                    let n = r.iter().map(|x| x * x).sum::<f64>().sqrt();
                    r.iter().map(|x| x / n).collect()
                })
                .collect()
        };
        let (f, c) = (norm(s), norm(t));
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let ce = |rows: &dyn Fn(usize, usize) -> f64| -> f64 {
            (0..b)
                .map(|i| {
                    let lse = (0..b).map(|j| rows(i, j).exp()).sum::<f64>().ln();
                    lse - rows(i, i)
                })
                .sum::<f64>()
                / b as f64
        };
        0.5 * ce(&|i, j| dot(&f[i], &c[j]) / tau) + 0.5 * ce(&|i, j| dot(&c[i], &f[j]) / tau)
    }

    #[test]
    fn matches_a_hand_computed_3x3_case() {
        let d = Device::flex();
        // three 3-d students and teachers, not normalised, not symmetric
        let s = [1.0, 2.0, 0.5, -1.0, 0.5, 2.0, 0.3, -0.7, 1.1];
        let t = [0.9, 1.5, 0.0, -0.2, 1.0, 1.0, 1.0, -1.0, 0.4];
        for tau in [0.1, 0.5, 1.0] {
            let want = reference(&s, &t, 3, 3, tau);
            let got = info_nce(t2(&s, 3, 3, &d), t2(&t, 3, 3, &d), tau).into_scalar::<f32>() as f64;
            assert!((got - want).abs() < 1e-4 * want.max(1.0), "tau {tau}: got {got}, want {want}");
        }
        // the two directions differ here, so the symmetric loss is not one of them alone
        let one_way = |x: &[f64], y: &[f64]| reference(x, y, 3, 3, 0.5);
        assert!((one_way(&s, &t) - one_way(&t, &s)).abs() < 1e-12, "the symmetric loss is symmetric in its arguments");
    }

    #[test]
    fn a_perfect_teacher_gives_the_closed_form_value() {
        // student = teacher = orthogonal rows (scaled): logits 1/τ on the diagonal, 0 elsewhere,
        // so each CE is ln(1 + (B−1)·e^{−1/τ}).
        let d = Device::flex();
        let (b, p) = (4, 6);
        let mut v = vec![0.0; b * p];
        for i in 0..b {
            v[i * p + i] = (i + 1) as f64 * 0.7;
        }
        for tau in [0.1, 0.5, 1.0] {
            let want = (1.0 + (b as f64 - 1.0) * (-1.0f64 / tau).exp()).ln();
            let got = info_nce(t2(&v, b, p, &d), t2(&v, b, p, &d), tau).into_scalar::<f32>() as f64;
            assert!((got - want).abs() < 1e-5, "tau {tau}: got {got}, want {want}");
            // any student that is not the teacher's own row order scores worse
            let mut shuffled = v.clone();
            shuffled.rotate_left(p);
            let worse = info_nce(t2(&shuffled, b, p, &d), t2(&v, b, p, &d), tau).into_scalar::<f32>() as f64;
            assert!(worse > want + 0.5, "tau {tau}: permuted student {worse} vs {want}");
        }
        // at τ = 0.1 the perfect teacher's loss is ln(1 + 3e^{-10}) ≈ 1.36e-4
        let got = info_nce(t2(&v, b, p, &d), t2(&v, b, p, &d), 0.1).into_scalar::<f32>() as f64;
        assert!(got < 2e-4, "{got}");
    }

    /// Restricted to the present posts, the loss is the plain loss of those posts alone; with
    /// every post present it is the plain loss.
    #[test]
    fn absent_posts_are_neither_anchors_nor_negatives() {
        let d = Device::flex();
        let s = [1.0, 2.0, 0.5, -1.0, 0.5, 2.0, 0.3, -0.7, 1.1, 5.0, -5.0, 5.0];
        let t = [0.9, 1.5, 0.0, -0.2, 1.0, 1.0, 1.0, -1.0, 0.4, -3.0, 3.0, 0.0];
        let flags = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &d);
        let all = info_nce_present(t2(&s, 4, 3, &d), t2(&t, 4, 3, &d), 0.2, flags(&[1.0; 4])).into_scalar::<f32>() as f64;
        assert!((all - reference(&s, &t, 4, 3, 0.2)).abs() < 1e-4, "all present: {all}");
        // post 1 absent: the loss of posts 0, 2, 3
        let keep = |v: &[f64]| [&v[0..3], &v[6..12]].concat();
        let want = reference(&keep(&s), &keep(&t), 3, 3, 0.2);
        let got = info_nce_present(t2(&s, 4, 3, &d), t2(&t, 4, 3, &d), 0.2, flags(&[1.0, 0.0, 1.0, 1.0])).into_scalar::<f32>() as f64;
        assert!((got - want).abs() < 1e-4, "post 1 absent: {got}, want {want}");
        assert!((got - all).abs() > 1e-3, "the absent post changed nothing: the mask is not applied");
    }

    #[test]
    fn gradient_reaches_the_student_only() {
        let d = Device::flex().autodiff();
        let s = t2(&[1.0, 2.0, 0.5, -1.0, 0.5, 2.0], 2, 3, &d).require_grad();
        let t = t2(&[0.9, 1.5, 0.0, -0.2, 1.0, 1.0], 2, 3, &d).require_grad();
        let grads = info_nce(s.clone(), t.clone(), 0.1).backward();
        let gs = s.grad(&grads).expect("student gradient");
        assert!(gs.abs().sum().into_scalar::<f32>() > 1e-6);
        assert!(t.grad(&grads).is_none(), "the teacher must receive no gradient");
    }
}
