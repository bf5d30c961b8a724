//! The training loop: batches from a background thread, forward/backward, global-norm
//! clipping, AdamW with parameter groups and a warm-up/decay schedule, periodic dev evaluation,
//! best-dev and last checkpoints (atomic), early stopping, exact resume, NaN guard.

use crate::checkpoint::{self, TrainState};
use crate::config::RunConfig;
use crate::evaluate::{EvalResult, evaluate};
use crate::examples::{Example, epoch_order, stream_batches};
use crate::optim::{Schedule, adamw, clip_global_norm};
use crate::parallel::data_parallel_grads;
use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mmfuse_data::image::ImageLoader;
use mmfuse_data::labels::LabelMap;
use mmfuse_kernels::device::on_compute_pool;
use mmfuse_models::task::TaskModel;
use serde_json::json;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Everything the loop reads besides the model and the configuration.
pub struct TrainData {
    pub train: Arc<Vec<Example>>,
    pub dev: Arc<Vec<Example>>,
    pub loader: Arc<ImageLoader>,
    pub labels: LabelMap,
}

/// How to run the loop.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Continue from `checkpoints/last` of the run folder.
    pub resume: bool,
    /// No progress bar.
    pub quiet: bool,
    /// Stop (as if killed) after this many steps of this invocation — for tests of resume.
    pub stop_after: Option<usize>,
}

/// What the loop ended with.
#[derive(Clone, Debug)]
pub struct FitOutcome {
    pub steps: usize,
    pub best_step: usize,
    pub best_metric: Option<f64>,
    pub early_stopped: bool,
    pub interrupted: bool,
}

/// Rows of `metrics.jsonl`.
pub fn metrics_path(run_dir: &Path) -> PathBuf {
    run_dir.join("metrics.jsonl")
}

pub(crate) fn append_row(path: &Path, row: &serde_json::Value) -> Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(f, "{row}")?;
    Ok(())
}

/// Keep only the rows of `metrics.jsonl` up to `step` (resume replays the rest).
pub(crate) fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["step"].as_u64()).is_some_and(|s| s as usize <= step))
        .collect();
    let mut body = kept.join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    checkpoint::write_atomic(path, body.as_bytes())
}

/// Book-keeping of one dev evaluation with `scores`: the selection metric `select` (lower is
/// better for `mae`, higher for every other) updates the best value and the patience count,
/// saves `model` as checkpoint `best` when it improved, and appends the row to `metrics`.
/// Returns whether early stopping (`patience` evaluations without improvement; 0 = never) ends
/// the run.
pub(crate) fn record_eval<M: burn::module::Module>(
    model: &M,
    state: &mut TrainState,
    scores: &std::collections::BTreeMap<String, f64>,
    select: &str,
    patience: usize,
    ckpt_root: &Path,
    metrics: &Path,
) -> Result<bool> {
    let value = *scores.get(select).with_context(|| format!("metric '{select}' is not computed for this task"))?;
    let lower_is_better = select == "mae";
    let improved = state.best_metric.is_none_or(|b| if lower_is_better { value < b } else { value > b });
    state.last_eval_step = state.step;
    if improved {
        state.best_metric = Some(value);
        state.best_step = state.step;
        state.evals_since_best = 0;
        checkpoint::save(ckpt_root, "best", model, None, state)?;
    } else {
        state.evals_since_best += 1;
    }
    append_row(metrics, &json!({"step": state.step, "epoch": state.epoch, "dev": scores, "best": improved}))?;
    tracing::info!(step = state.step, "dev {select} = {value:.4}{}", if improved { " (best)" } else { "" });
    Ok(patience > 0 && state.evals_since_best >= patience)
}

// What the training loops (`fit` here, MIM's in `aligned`) do around their steps, shared so that
// both stop, evaluate, checkpoint and resume alike: `after_step`, `after_epoch`, `finish`. Their
// `eval` scores the dev split and records it (returns whether patience ran out); `save` writes
// the `last` checkpoint.

/// How a loop ended early: patience ran out, or `--stop-after` interrupted it.
#[derive(Clone, Copy, Default)]
pub(crate) struct Ending {
    pub early_stopped: bool,
    pub interrupted: bool,
}

/// After each optimiser step: settle the batch-norm statistics, evaluate and save every
/// `eval_every` steps; save and stop after `stop_after` steps of this call.
pub(crate) fn after_step<M: Module>(
    t: &crate::config::TrainConfig,
    state: &mut TrainState,
    steps_this_call: usize,
    stop_after: Option<usize>,
    model: &M,
    eval: &dyn Fn(&M, &mut TrainState) -> Result<bool>,
    save: &dyn Fn(&M, &TrainState) -> Result<()>,
) -> Result<Option<Ending>> {
    settle_running_stats(model);
    if t.eval_every > 0 && state.step.is_multiple_of(t.eval_every) {
        let stop = eval(model, state)?;
        save(model, state)?;
        if stop {
            return Ok(Some(Ending { early_stopped: true, interrupted: false }));
        }
    }
    if stop_after.is_some_and(|s| steps_this_call >= s) {
        save(model, state)?;
        return Ok(Some(Ending { early_stopped: false, interrupted: true }));
    }
    Ok(None)
}

/// At the end of an epoch: the next epoch starts; with `eval_every = 0` evaluate and save, and
/// stop when patience ran out.
pub(crate) fn after_epoch<M>(
    t: &crate::config::TrainConfig,
    state: &mut TrainState,
    model: &M,
    eval: &dyn Fn(&M, &mut TrainState) -> Result<bool>,
    save: &dyn Fn(&M, &TrainState) -> Result<()>,
) -> Result<Option<Ending>> {
    state.epoch += 1;
    state.batch_in_epoch = 0;
    if t.eval_every > 0 {
        return Ok(None);
    }
    let stop = eval(model, state)?;
    save(model, state)?;
    Ok(stop.then_some(Ending { early_stopped: true, interrupted: false }))
}

/// After the loop: unless interrupted, a last evaluation (when the last step has none), the run
/// marked finished, and the `last` checkpoint; then the outcome.
pub(crate) fn finish<M>(
    t: &crate::config::TrainConfig,
    mut state: TrainState,
    model: &M,
    Ending { early_stopped, interrupted }: Ending,
    eval: &dyn Fn(&M, &mut TrainState) -> Result<bool>,
    save: &dyn Fn(&M, &TrainState) -> Result<()>,
) -> Result<FitOutcome> {
    if !interrupted {
        if state.best_metric.is_none() || state.last_eval_step != state.step {
            eval(model, &mut state)?;
        }
        state.finished = true;
        save(model, &state)?;
    }
    if early_stopped {
        tracing::info!("early stop at step {}: no dev improvement in {} evaluations", state.step, t.patience);
    }
    Ok(FitOutcome { steps: state.step, best_step: state.best_step, best_metric: state.best_metric, early_stopped, interrupted })
}

/// The progress bar of a training loop of `total` steps, starting at `step`.
pub(crate) fn progress_bar(total: usize, step: usize, quiet: bool) -> ProgressBar {
    let pb = if quiet { ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::hidden()) } else { ProgressBar::new(total as u64) };
    pb.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps {per_sec} ETA {eta} {msg}").expect("valid template"));
    pb.set_position(step as u64);
    pb
}

/// Fold the batch-norm running statistics a step recorded into their value.
///
/// burn's `RunningState` keeps one pending update per thread and averages them at the next
/// read on the same thread (it was built for data-parallel threads). Our steps run on whichever
/// compute-pool thread is free, so without this a step on another thread than the previous one
/// would read a stale value, and the saved statistics would depend on thread timing: no
/// reproducible runs, no exact resume. Syncing after every step leaves one pending update at a
/// time, which the sync takes as is. (`Module::valid` is the public call that syncs; its
/// result, the model without autodiff, is dropped.)
fn settle_running_stats<M: Module>(model: &M) {
    let _ = model.valid();
}

/// Per-step seed of the device RNG (dropout), so a resumed run draws the same masks.
pub(crate) fn step_seed(seed: u64, step: usize) -> u64 {
    seed ^ (step as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// Train `model` on `data` under `cfg`, writing checkpoints and `metrics.jsonl` to `run_dir`.
/// `device` must be an autodiff device. Returns the model after the last step.
/// Apply `train.freeze` and `train.batch_norm`.
fn freeze_for<M: TaskModel>(model: M, cfg: &RunConfig) -> Result<M> {
    let (model, n) = crate::optim::freeze(model, &cfg.train.freeze).map_err(anyhow::Error::msg)?;
    if n > 0 {
        tracing::info!("froze {n} parameter values ({})", cfg.train.freeze.join(", "));
    }
    if cfg.train.batch_norm == "eval" {
        let (model, layers) = crate::optim::set_batch_norm_training(model, false);
        tracing::info!("{layers} batch-norm layers in evaluation mode");
        return Ok(model);
    }
    Ok(model)
}

pub fn fit<M: TaskModel>(model: M, cfg: &RunConfig, data: &TrainData, run_dir: &Path, opts: &TrainOptions, device: &Device) -> Result<(M, FitOutcome)> {
    let t = &cfg.train;
    std::fs::create_dir_all(run_dir).with_context(|| format!("cannot create run folder {}", run_dir.display()))?;
    let n = data.train.len();
    if n == 0 {
        bail!("the train split is empty");
    }
    let batches_per_epoch = n.div_ceil(t.batch_size);
    let mut total = t.epochs * batches_per_epoch;
    if t.max_steps > 0 {
        total = total.min(t.max_steps);
    }
    let warmup = (t.warmup_ratio * total as f64).ceil() as usize;
    let mut optim = adamw(t.weight_decay, t.adam_eps);
    let mut sched = Schedule::new(t.lr, t.head_lr, warmup, total);
    let ckpt_root = run_dir.join("checkpoints");
    let metrics = metrics_path(run_dir);
    let select = cfg.select_metric();
    let eval_device = device.clone().without_autodiff();
    let parallel: Vec<Device> =
        t.devices.iter().map(|d| d.device().map(|d| d.autodiff())).collect::<std::result::Result<_, String>>().map_err(anyhow::Error::msg)?;
    if parallel.len() > 1 {
        tracing::info!("data parallel over {} devices: {:?}", parallel.len(), t.devices.iter().map(|d| d.to_string()).collect::<Vec<_>>());
    }

    let mut model = freeze_for(model, cfg)?;
    let mut state = TrainState::default();
    if opts.resume {
        match checkpoint::load(&ckpt_root, "last")? {
            Some(ck) => {
                model = model.try_load_record(ck.model).context("checkpoint does not match the model")?;
                if let Some(b) = ck.optimizer {
                    optim = optim.from_bytes(b).context("cannot restore the optimizer state")?;
                }
                state = ck.state;
                model = freeze_for(model, cfg)?;
                sched.skip(state.step);
                truncate_metrics(&metrics, state.step)?;
                tracing::info!("resumed from {} at step {}", ck.dir.display(), state.step);
            }
            None => tracing::warn!("--resume: no checkpoint in {}, starting from scratch", ckpt_root.display()),
        }
    } else if metrics.exists() {
        std::fs::remove_file(&metrics)?;
    }
    if state.finished {
        return Ok((
            model,
            FitOutcome { steps: state.step, best_step: state.best_step, best_metric: state.best_metric, early_stopped: false, interrupted: false },
        ));
    }

    let pb = progress_bar(total, state.step, opts.quiet);

    let mut ending = Ending::default();
    let mut steps_this_call = 0usize;
    let mut running = (0.0f64, 0usize);
    let log_every = (batches_per_epoch / 10).clamp(1, 50);

    let do_eval = |model: &M, state: &mut TrainState| -> Result<bool> {
        let valid = model.valid();
        let res: EvalResult = evaluate(&valid, data.dev.clone(), data.loader.clone(), t.batch_size * 2, &eval_device, &data.labels)?;
        record_eval(model, state, &res.scores, &select, t.patience, &ckpt_root, &metrics)
    };

    'epochs: while state.epoch < t.epochs {
        let order = epoch_order(n, t.seed, state.epoch);
        let skip = (state.batch_in_epoch * t.batch_size).min(n);
        let rx = stream_batches(data.train.clone(), order[skip..].to_vec(), t.batch_size, data.loader.clone(), 4, !model.fixed_length());
        for hb in rx {
            if state.step >= total {
                break 'epochs;
            }
            let hb = hb?;
            device.seed(step_seed(t.seed, state.step));
            let (loss_v, mut grads) = if parallel.len() > 1 {
                data_parallel_grads(&model, &hb, &parallel)
            } else {
                on_compute_pool(|| {
                    let loss = model.loss(&hb.to_device(device));
                    let v = loss.clone().into_scalar::<f32>() as f64;
                    (v, GradientsParams::from_grads(loss.backward(), &model))
                })
            };
            if !loss_v.is_finite() {
                bail!(
                    "the training loss is {loss_v} at step {} (epoch {}); stopping. The last good checkpoint is {} (step of the last evaluation); try a lower train.lr or a smaller train.clip_norm",
                    state.step + 1,
                    state.epoch + 1,
                    ckpt_root.join("last").display()
                );
            }
            let norm = on_compute_pool(|| clip_global_norm(&model, &mut grads, t.clip_norm));
            if !norm.is_finite() {
                bail!("the gradient norm is {norm} at step {}; stopping with the last good checkpoint in {}", state.step + 1, ckpt_root.join("last").display());
            }
            let lr = sched.base.at(state.step);
            let lrs = sched.step();
            model = on_compute_pool(|| optim.step(lrs, model, grads));
            state.step += 1;
            state.batch_in_epoch += 1;
            steps_this_call += 1;
            running.0 += loss_v;
            running.1 += 1;
            if state.step % log_every == 0 {
                let mean = running.0 / running.1 as f64;
                append_row(&metrics, &json!({"step": state.step, "epoch": state.epoch, "loss": mean, "lr": lr, "grad_norm": norm}))?;
                pb.set_message(format!("loss {mean:.4}"));
                running = (0.0, 0);
            }
            pb.set_position(state.step as u64);
            let save = |m: &M, s: &TrainState| checkpoint::save(&ckpt_root, "last", m, Some(&optim), s);
            if let Some(e) = after_step(t, &mut state, steps_this_call, opts.stop_after, &model, &do_eval, &save)? {
                ending = e;
                break 'epochs;
            }
        }
        if let Some(e) = after_epoch(t, &mut state, &model, &do_eval, &|m: &M, s: &TrainState| checkpoint::save(&ckpt_root, "last", m, Some(&optim), s))? {
            ending = e;
            break;
        }
    }
    let outcome = finish(t, state, &model, ending, &do_eval, &|m: &M, s: &TrainState| checkpoint::save(&ckpt_root, "last", m, Some(&optim), s))?;
    pb.finish_and_clear();
    Ok((model, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{BatchNorm, BatchNormConfig};
    use burn::tensor::{Distribution, Tensor};

    /// Two training steps whose batch-norm forward runs on different threads (as on a compute
    /// pool with 2 threads) leave the same running statistics as two steps on one thread, once
    /// each step is followed by `settle_running_stats`; without it the second thread reads a
    /// stale value and the statistics depend on which thread ran which step.
    #[test]
    fn running_stats_do_not_depend_on_the_thread_of_each_step() {
        let device = Device::flex().autodiff();
        let batches: Vec<Tensor<4>> = (0..2).map(|i| Tensor::random([4, 3, 5, 5], Distribution::Normal(i as f64, 1.0 + i as f64), &device)).collect();
        let run = |two_threads: bool, settle: bool| -> Vec<f32> {
            let bn: BatchNorm = BatchNormConfig::new(3).init(&device);
            for (i, x) in batches.iter().enumerate() {
                let step = || drop(bn.forward(x.clone()));
                if two_threads && i == 1 {
                    std::thread::scope(|s| s.spawn(step).join().unwrap());
                } else {
                    step();
                }
                if settle {
                    settle_running_stats(&bn);
                }
            }
            bn.valid().running_mean.value().into_data().try_to_vec::<f32>().unwrap()
        };
        let one_thread = run(false, true);
        assert_eq!(run(true, true), one_thread);
        assert_eq!(run(false, false), one_thread, "on one thread the pending update is folded at the next read");
        assert_ne!(run(true, false), one_thread, "the thread-dependence this guards against");
    }
}
