//! The HardConcrete gate (Louizos et al. 2018, "Learning Sparse Neural Networks through L0
//! Regularization") as MIM's purification network uses it, per time step `t` with logit `z_t`:
//!
//! ```text
//! s  = σ((log u − log(1 − u) + z + bias) / β),   u ~ U(0, 1)      (training)
//! s  = σ((z + bias) / β)                                           (evaluation, deterministic)
//! s̄  = clip(s·(ζ − γ) + γ, 0, 1)
//! mask = 1[s̄ > threshold]   forward value; gradient of s̄ (straight-through)
//! L0  = mean σ(z + bias − β·ln(−γ/ζ))
//! ```
//!
//! MIM's values: β = 1/3, γ = −0.2, ζ = 1, bias 3, threshold 0.6. At z = 0 the probability of
//! keeping a step is σ(bias − β·logit((threshold − γ)/(ζ − γ))) ≈ 0.941 and the penalty ≈ 0.972.
//! The released code samples the noise at evaluation too (`stochastic_eval`).
//!
//! Paper: MIM, Multimodal Information Modulation (Zeng, Mai, Yan & Hu, IEEE TMM 2023, doi:10.1109/tmm.2023.3293335),
//! the gate of its Unimodal Purification Network (UPN); shared/METHODS.md §3 "UPN" (no section or equation numbers in
//! our sources).

use burn::config::Config;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Distribution, Tensor};

/// Gate constants (MIM's by default).
#[derive(Config, Debug, Copy)]
pub struct HardConcreteConfig {
    /// Temperature β. Default 1/3.
    #[config(default = 0.3333333333333333)]
    pub beta: f64,
    /// Stretch lower end γ (< 0). Default −0.2.
    #[config(default = -0.2)]
    pub gamma: f64,
    /// Stretch upper end ζ (≥ 1). Default 1.0.
    #[config(default = 1.0)]
    pub zeta: f64,
    /// Location bias added to the logits. Default 3.0.
    #[config(default = 3.0)]
    pub bias: f64,
    /// Hard-mask threshold on s̄. Default 0.6.
    #[config(default = 0.6)]
    pub threshold: f64,
    /// Sample the noise at evaluation too, as the released code does. Default false.
    #[config(default = false)]
    pub stochastic_eval: bool,
}

/// The gate (no trainable parameters: the logits come from the purification network).
#[derive(Clone, Copy, Debug)]
pub struct HardConcrete {
    pub config: HardConcreteConfig,
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

impl HardConcrete {
    pub fn new(config: HardConcreteConfig) -> Self {
        Self { config }
    }

    /// The stretched, clipped s̄ for `logits` `[B, T]`; noisy when `training` (or
    /// `stochastic_eval`).
    pub fn stretched(&self, logits: Tensor<2>, training: bool) -> Tensor<2> {
        let c = self.config;
        let x = logits.add_scalar(c.bias);
        let x = if training || c.stochastic_eval {
            let u = Tensor::<2>::random(x.dims(), Distribution::Uniform(1e-6, 1.0 - 1e-6), &x.device());
            let noise = u.clone().log() - u.neg().add_scalar(1.0).log();
            x + noise
        } else {
            x
        };
        sigmoid(x.div_scalar(c.beta)).mul_scalar(c.zeta - c.gamma).add_scalar(c.gamma).clamp(0.0, 1.0)
    }

    /// The hard 0/1 mask `[B, T]` with the straight-through gradient of s̄.
    pub fn mask(&self, logits: Tensor<2>, training: bool) -> Tensor<2> {
        let s = self.stretched(logits, training);
        let hard = s.clone().greater_elem(self.config.threshold).float();
        hard - s.clone().detach() + s
    }

    /// Expected L0 penalty: the mean over steps of P(s̄ > 0) = σ(z + bias − β·ln(−γ/ζ)).
    pub fn penalty(&self, logits: Tensor<2>) -> Tensor<1> {
        self.l0(logits).mean()
    }

    /// Per-step P(s̄ > 0) = σ(z + bias − β·ln(−γ/ζ)) `[B, T]` (callers average over real steps).
    pub fn l0(&self, logits: Tensor<2>) -> Tensor<2> {
        let c = self.config;
        sigmoid(logits.add_scalar(c.bias - c.beta * (-c.gamma / c.zeta).ln()))
    }

    /// Closed-form probability that the stochastic gate keeps a step with logit `z`:
    /// P(s̄ > threshold) = σ(z + bias − β·logit((threshold − γ)/(ζ − γ))).
    pub fn keep_probability(&self, z: f64) -> f64 {
        let c = self.config;
        let s = (c.threshold - c.gamma) / (c.zeta - c.gamma);
        1.0 / (1.0 + (-(z + c.bias - c.beta * logit(s))).exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn closed_form_at_zero_logit() {
        let g = HardConcrete::new(HardConcreteConfig::new());
        let p = g.keep_probability(0.0);
        assert!((p - 0.9410).abs() < 5e-4, "P(keep) {p}");
        let device = Device::flex();
        let pen = g.penalty(Tensor::<2>::zeros([1, 1], &device)).into_scalar::<f32>() as f64;
        // σ(3 − (1/3)·ln 0.2) = σ(3.5365) = 0.9717
        assert!((pen - 0.97170).abs() < 1e-4, "penalty {pen}");
    }

    #[test]
    fn sampled_keep_rate_matches_the_closed_form() {
        let device = Device::flex();
        device.seed(7);
        let g = HardConcrete::new(HardConcreteConfig::new());
        for z in [0.0f32, -3.0, -5.0] {
            let n = 200_000;
            let m = g.mask(Tensor::<2>::full([1, n], z, &device), true);
            let rate = m.mean().into_scalar::<f32>() as f64;
            let p = g.keep_probability(z as f64);
            assert!((rate - p).abs() < 0.005, "z {z}: sampled {rate}, closed form {p}");
        }
    }

    #[test]
    fn hard_mask_with_straight_through_gradient_and_deterministic_eval() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let g = HardConcrete::new(HardConcreteConfig::new());
        // logits chosen so that, without noise, s̄ is strictly inside (0, 1) for the middle ones
        let z = Tensor::<2>::from_data(TensorData::new(vec![-10.0f32, -3.2, -2.8, -2.5, 10.0], [1, 5]), &device).require_grad();
        let m = g.mask(z.clone(), false);
        let values = m.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| *v == 0.0 || *v == 1.0), "{values:?}");
        assert_eq!(values[0], 0.0);
        assert_eq!(values[4], 1.0);
        // deterministic at evaluation: the same logits give the same mask
        let again = g.mask(z.clone(), false).into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        assert_eq!(values, again);
        // straight-through: d mask / d z = d s̄ / d z, non-zero where s̄ is inside (0, 1)
        let grads = m.sum().backward();
        let dz = z.grad(&grads).unwrap().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let s = |z: f64| 1.2 / (1.0 + (-(z + 3.0) * 3.0).exp()) - 0.2;
        for (i, zi) in [-10.0f64, -3.2, -2.8, -2.5, 10.0].iter().enumerate() {
            let inside = s(*zi) > 0.0 && s(*zi) < 1.0;
            let expected = if inside {
                let sig = 1.0 / (1.0 + (-(zi + 3.0) * 3.0).exp());
                1.2 * sig * (1.0 - sig) * 3.0
            } else {
                0.0
            };
            assert!((dz[i] as f64 - expected).abs() < 1e-4, "step {i}: gradient {} vs {expected}", dz[i]);
        }
        assert!(dz[1] != 0.0 && dz[2] != 0.0 && dz[3] != 0.0);
    }
}
