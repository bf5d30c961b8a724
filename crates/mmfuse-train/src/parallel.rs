//! Data parallelism over several devices with burn's own multi-device machinery: the model is
//! forked to each device (`Module::fork`), each device computes the gradients of its shard of
//! the batch, and burn's `MultiGradientsParams` reduces them (sums each parameter's gradients
//! across devices onto one device). The reduced gradients then go through the same global-norm
//! clipping and AdamW step as on one device, so a data-parallel step equals a one-device step on
//! the whole batch (up to float summation order) — tested below on two CPU "devices".
//!
//! Shard losses are weighted by `shard_size / batch_size`, so the summed gradients are those of
//! the batch-mean loss.

use burn::module::{ModuleVisitor, Param};
use burn::optim::{GradientsParams, MultiGradientsParams};
use burn::tensor::{Device, Tensor};
use mmfuse_models::batch::HostBatch;
use mmfuse_models::task::TaskModel;

struct Reduce<'a> {
    multi: &'a mut MultiGradientsParams,
    out: GradientsParams,
    main: Device,
}

impl ModuleVisitor for Reduce<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some((g, _)) = self.multi.remove::<D>(param.id) {
            self.out.register::<D>(param.id, g.to_device(&self.main));
        }
    }
}

/// Loss (batch mean) and gradients of `model` (living on `devices[0]`) for `batch`, computed in
/// shards on `devices` and reduced onto `devices[0]`.
pub fn data_parallel_grads<M: TaskModel>(model: &M, batch: &HostBatch, devices: &[Device]) -> (f64, GradientsParams) {
    let shards = batch.split(devices.len());
    let total = batch.batch_size as f64;
    let mut multi = MultiGradientsParams::default();
    let mut loss_sum = 0.0;
    for (shard, device) in shards.iter().zip(devices) {
        if shard.batch_size == 0 {
            continue;
        }
        let replica = model.clone().fork(device);
        let weight = shard.batch_size as f64 / total;
        let loss = replica.loss(&shard.to_device(device)).mul_scalar(weight);
        loss_sum += loss.clone().into_scalar::<f32>() as f64;
        let grads = GradientsParams::from_grads(loss.backward(), &replica);
        multi.grads.push((grads, device.clone()));
    }
    let mut r = Reduce { multi: &mut multi, out: GradientsParams::new(), main: devices[0].clone() };
    model.visit(&mut r);
    (loss_sum, r.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use mmfuse_models::encoders::{ImageCnnConfig, TextTransformerConfig};
    use mmfuse_models::fusion::{ConcatFusionConfig, Modality};
    use mmfuse_models::task::TaskKind;

    fn host_batch(b: usize) -> HostBatch {
        let (l, s) = (5, 8);
        let mut hb = HostBatch { batch_size: b, seq_len: l, image_size: s, ..Default::default() };
        for i in 0..b {
            for p in 0..l {
                hb.ids.push(((i * 5 + p * 3) % 11) as i64);
                hb.mask.push(p < l - i % 2);
            }
        }
        hb.images = (0..b * 3 * s * s).map(|i| ((i * 31 % 17) as f32 / 8.0) - 1.0).collect();
        hb.classes = Some((0..b).map(|i| (i % 3) as i64).collect());
        hb
    }

    /// A tiny late-fusion classifier, seeded; no batch-norm: its batch statistics differ per
    /// shard by design.
    fn tiny_model(device: &Device, seed: u64) -> mmfuse_models::fusion::ConcatFusion {
        device.seed(seed);
        let text = TextTransformerConfig::new(11).with_d_model(8).with_n_heads(2).with_n_layers(1).with_d_ff(16).with_max_len(5).with_dropout(0.0);
        let image = ImageCnnConfig::new().with_channels(vec![]).with_d_model(8);
        ConcatFusionConfig::new(Modality::Fused, TaskKind::Classify { n_classes: 3 }, text.into(), image.into()).with_dropout(0.0).init(device)
    }

    #[test]
    fn two_device_step_equals_one_device_step() {
        let device = Device::flex().autodiff();
        let model = tiny_model(&device, 11);
        let hb = host_batch(6);
        let loss = model.loss(&hb.to_device(&device));
        let single_loss = loss.clone().into_scalar::<f32>() as f64;
        let single = GradientsParams::from_grads(loss.backward(), &model);
        let (par_loss, par) = data_parallel_grads(&model, &hb, &[device.clone(), Device::flex().autodiff()]);
        assert!((single_loss - par_loss).abs() < 1e-5, "{single_loss} vs {par_loss}");
        let w = model.head.hidden.weight.id;
        let a = single.get::<2>(w).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let b = par.get::<2>(w).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(max < 1e-5, "max gradient difference {max}");
        assert!(a.iter().any(|v| v.abs() > 1e-6), "gradients must not be trivially zero");
        assert_eq!(single.len(), par.len());
    }

    /// Data parallelism on GPU devices (the same adapter twice: what one machine can test) and
    /// on a CPU + a GPU equals the one-CPU-device step, the gradients reduced onto `devices[0]`.
    #[test]
    fn data_parallel_on_gpu_devices_equals_one_cpu_step() {
        let Some((gpu, _)) = mmfuse_testkit::test_gpu("GPU data parallelism") else { return };
        let gpu = gpu.autodiff();
        let device = Device::flex().autodiff();
        let model = tiny_model(&device, 12);
        let hb = host_batch(6);
        let loss = model.loss(&hb.to_device(&device));
        let single_loss = loss.clone().into_scalar::<f32>() as f64;
        let single = GradientsParams::from_grads(loss.backward(), &model);
        let w = model.head.hidden.weight.id;
        let a = single.get::<2>(w).unwrap().into_data().try_to_vec::<f32>().unwrap();
        for devices in [vec![gpu.clone(), gpu.clone()], vec![device.clone(), gpu.clone()]] {
            let on_first = model.clone().fork(&devices[0]);
            let (par_loss, par) = data_parallel_grads(&on_first, &hb, &devices);
            assert!((single_loss - par_loss).abs() < 1e-4 * single_loss.abs(), "{single_loss} vs {par_loss}");
            let b = par.get::<2>(w).unwrap().into_data().try_to_vec::<f32>().unwrap();
            let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            let scale = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            assert!(max <= 1e-4 * scale, "max gradient difference {max} (scale {scale})");
            assert_eq!(single.len(), par.len());
        }
    }

    #[test]
    fn split_keeps_every_row_once() {
        let hb = host_batch(7);
        let parts = hb.split(3);
        assert_eq!(parts.iter().map(|p| p.batch_size).collect::<Vec<_>>(), [3, 2, 2]);
        let ids: Vec<i64> = parts.iter().flat_map(|p| p.ids.clone()).collect();
        assert_eq!(ids, hb.ids);
        let imgs: Vec<f32> = parts.iter().flat_map(|p| p.images.clone()).collect();
        assert_eq!(imgs, hb.images);
    }
}
