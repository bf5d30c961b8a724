//! ReLU6, `min(max(x, 0), 6)`, as one vectorised pass at prediction.

use crate::device::is_cpu;
use crate::math::{clamp_relu, for_chunks};
use burn::tensor::{DType, Tensor};

/// `min(max(x, 0), 6)` (MobileNetV2's activation), NaN kept. On the CPU backend without
/// autodiff one vectorised pass in place: burn-flex's `clamp` is a scalar pass, 22 % of
/// MobileNetV2's forward (`perf`, one thread). burn's `relu6` elsewhere.
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !is_cpu(&device) || device.is_autodiff() || x.dtype() != DType::F32 {
        return burn::tensor::activation::relu6(x);
    }
    let mut data = x.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(v) => {
            for_chunks(v, |c| clamp_relu(c, 6.0));
            Tensor::from_data(data, &device)
        }
        Err(_) => burn::tensor::activation::relu6(Tensor::from_data(data, &device)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn relu6_matches_burn_and_keeps_nan() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 3, 17, 19], Distribution::Normal(2.0, 5.0), &device);
        let want = burn::tensor::activation::relu6(x.clone()).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(relu6(x).into_data().try_to_vec::<f32>().unwrap(), want);
        let y = relu6(Tensor::<1>::from_floats([-1.0, 0.0, 3.5, 6.0, 7.0, f32::NAN], &device)).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(&y[..5], &[0.0, 0.0, 3.5, 6.0, 6.0]);
        assert!(y[5].is_nan());
    }
}
