//! The one training loop ([`train_loop`]) and what a method plugs into it
//! ([`UpdateStrategy`]: its batches, the steps of one update, its evaluation and optimiser
//! state). Every method gets the same periodic dev evaluation, best-dev and last checkpoints
//! (atomic), early stopping, exact resume, progress, `metrics.jsonl` and NaN guard. The post
//! models' update ([`SingleStep`]): batches from a background thread, forward/backward,
//! global-norm clipping, AdamW with parameter groups and a warm-up/decay schedule, data
//! parallelism.

use crate::batches::{Example, epoch_order, stream_batches};
use crate::checkpoint::{self, TrainState};
use crate::config::RunConfig;
use crate::evaluate::{EvalResult, evaluate};
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
    /// Called after every optimiser step and every dev evaluation (e.g. the Python package's
    /// progress callback); returning false after a step stops the run there as an interruption:
    /// the `last` checkpoint is saved and `resume` continues it.
    pub progress: Option<ProgressHook>,
}

/// What the loop reports to [`TrainOptions::progress`].
#[derive(Clone, Debug)]
pub enum Progress<'a> {
    /// After an optimiser step: its logged values (`loss`, …), 1-based `step` of `total`.
    Step { epoch: usize, step: usize, total: usize, values: &'a [(&'static str, f64)] },
    /// After a dev evaluation: its scores.
    Eval { epoch: usize, step: usize, scores: &'a std::collections::BTreeMap<String, f64> },
}

/// A progress callback: `true` to go on, `false` to stop after this step (checkpoint kept).
#[derive(Clone)]
pub struct ProgressHook(pub Arc<dyn Fn(&Progress<'_>) -> bool + Send + Sync>);

impl std::fmt::Debug for ProgressHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressHook(..)")
    }
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
fn record_eval<M: burn::module::Module>(
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

// What the loop does around its steps: `after_step`, `after_epoch`, `finish`. Their `eval`
// scores the dev split and records it (returns whether patience ran out); `save` writes the
// `last` checkpoint.

/// How a loop ended early: patience ran out, or `--stop-after` interrupted it.
#[derive(Clone, Copy, Default)]
struct Ending {
    pub early_stopped: bool,
    pub interrupted: bool,
}

/// After each optimiser step: settle the batch-norm statistics, evaluate and save every
/// `eval_every` steps; save and stop when `stop_now` (`stop_after` steps of this call, or the
/// progress hook asked to stop).
fn after_step<M: Module>(
    t: &crate::config::TrainConfig,
    state: &mut TrainState,
    stop_now: bool,
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
    if stop_now {
        save(model, state)?;
        return Ok(Some(Ending { early_stopped: false, interrupted: true }));
    }
    Ok(None)
}

/// At the end of an epoch: the next epoch starts; with `eval_every = 0` evaluate and save, and
/// stop when patience ran out.
fn after_epoch<M>(
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
fn finish<M>(
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
fn progress_bar(total: usize, step: usize, quiet: bool) -> ProgressBar {
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

/// Apply `train.freeze` and `train.batch_norm` (after the model is built, and again after a
/// checkpoint is loaded into it).
fn freeze_for<M: Module>(model: M, cfg: &RunConfig) -> Result<M> {
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

/// Steps of the whole run and batches per epoch for `n` training samples (`train.epochs`,
/// capped by `train.max_steps`).
pub fn schedule_len(t: &crate::config::TrainConfig, n: usize) -> (usize, usize) {
    let per_epoch = n.div_ceil(t.batch_size);
    let mut total = t.epochs * per_epoch;
    if t.max_steps > 0 {
        total = total.min(t.max_steps);
    }
    (total, per_epoch)
}

/// Warm-up steps of a run of `total` steps.
pub fn warmup_steps(t: &crate::config::TrainConfig, total: usize) -> usize {
    (t.warmup_ratio * total as f64).ceil() as usize
}

/// What one optimiser update reports to the loop.
pub struct StepLog {
    /// Values logged to `metrics.jsonl` as running means (`metrics.jsonl` key, value); the first
    /// is shown on the progress bar.
    pub values: Vec<(&'static str, f64)>,
    /// Global gradient norm before clipping (the last step's).
    pub grad_norm: f64,
    /// Learning rate of the encoders and fusion layers at this step.
    pub lr: f64,
    /// A loss that was not finite (its name in messages, its value): the update was not applied
    /// and the run stops with the last good checkpoint.
    pub non_finite: Option<(&'static str, f64)>,
}

/// What a method does inside the one training loop ([`train_loop`]): its batches, the steps of
/// one update and which parameters each moves, its dev evaluation, and the optimiser state it
/// checkpoints. Everything else — epochs and the sample order, resume, early stopping, the
/// `best`/`last` checkpoints, progress, `metrics.jsonl`, the NaN guard — is the loop's, the same
/// for every method.
///
/// - [`SingleStep`]: one loss, one AdamW update of every trainable parameter (concat, MuSE,
///   CLFA), optionally data-parallel over several devices.
/// - [`crate::aligned::MimTwoStep`]: MIM's update: the purification networks on their own loss,
///   then a fresh forward and every parameter on the main loss.
pub trait UpdateStrategy {
    type Model: Module + Sync + 'static;
    type Batch;
    /// Samples in the train split.
    fn n_train(&self) -> usize;
    /// Batches of the samples `order` (train-split indices), in order.
    fn batches(&self, model: &Self::Model, order: Vec<usize>) -> Box<dyn Iterator<Item = Result<Self::Batch>>>;
    /// One optimiser update at step `step` (0-based) on an autodiff device.
    fn update(&mut self, model: Self::Model, batch: Self::Batch, step: usize) -> Result<(Self::Model, StepLog)>;
    /// Score the dev split (metric name → value).
    fn evaluate(&self, model: &Self::Model) -> Result<EvalResult>;
    /// Write checkpoint `last` under `root`: the model, the optimiser state(s), `state`.
    fn save_last(&self, root: &Path, model: &Self::Model, state: &TrainState) -> Result<()>;
    /// Restore the optimiser state(s) of the checkpoint in `dir` (its main optimiser's bytes
    /// already read) and move the schedule to `step`.
    fn restore(&mut self, optimizer: Option<burn::tensor::Bytes>, dir: &Path, step: usize) -> Result<()>;
}

/// One loss, one update of every trainable parameter: AdamW with the head group's learning
/// rate, global-norm clipping, data parallelism over `train.devices`.
pub struct SingleStep<'a, M> {
    cfg: &'a RunConfig,
    data: &'a TrainData,
    optim: burn::optim::ModuleOptimizer,
    sched: Schedule,
    device: Device,
    eval_device: Device,
    parallel: Vec<Device>,
    _model: std::marker::PhantomData<fn() -> M>,
}

impl<'a, M> SingleStep<'a, M> {
    /// The update of `cfg` over `data` on the autodiff `device`.
    pub fn new(cfg: &'a RunConfig, data: &'a TrainData, device: &Device) -> Result<Self> {
        let t = &cfg.train;
        let (total, _) = schedule_len(t, data.train.len());
        let parallel: Vec<Device> =
            t.devices.iter().map(|d| d.device().map(|d| d.autodiff())).collect::<std::result::Result<_, String>>().map_err(anyhow::Error::msg)?;
        if parallel.len() > 1 {
            tracing::info!("data parallel over {} devices: {:?}", parallel.len(), t.devices.iter().map(|d| d.to_string()).collect::<Vec<_>>());
        }
        Ok(Self {
            cfg,
            data,
            optim: adamw(t.weight_decay, t.adam_eps),
            sched: Schedule::new(t.lr, t.head_lr, warmup_steps(t, total), total),
            device: device.clone(),
            eval_device: device.clone().without_autodiff(),
            parallel,
            _model: std::marker::PhantomData,
        })
    }
}

impl<M: TaskModel> UpdateStrategy for SingleStep<'_, M> {
    type Model = M;
    type Batch = mmfuse_models::batch::HostBatch;

    fn n_train(&self) -> usize {
        self.data.train.len()
    }

    fn batches(&self, model: &M, order: Vec<usize>) -> Box<dyn Iterator<Item = Result<Self::Batch>>> {
        let d = self.data;
        Box::new(stream_batches(d.train.clone(), order, self.cfg.train.batch_size, d.loader.clone(), 4, !model.fixed_length()).into_iter())
    }

    fn update(&mut self, model: M, mut hb: Self::Batch, step: usize) -> Result<(M, StepLog)> {
        if self.cfg.model.modality == mmfuse_models::fusion::Modality::Fused {
            crate::batches::apply_modality_dropout(&mut hb, self.cfg.train.modality_dropout, self.cfg.train.seed, step);
        }
        let device = &self.device;
        let (loss_v, mut grads) = if self.parallel.len() > 1 {
            data_parallel_grads(&model, &hb, &self.parallel)
        } else {
            on_compute_pool(|| {
                let loss = model.loss(&hb.to_device(device));
                let v = loss.clone().into_scalar::<f32>() as f64;
                (v, GradientsParams::from_grads(loss.backward(), &model))
            })
        };
        let lr = self.sched.base.at(step);
        if !loss_v.is_finite() {
            return Ok((model, StepLog { values: vec![("loss", loss_v)], grad_norm: 0.0, lr, non_finite: Some(("loss", loss_v)) }));
        }
        let norm = on_compute_pool(|| clip_global_norm(&model, &mut grads, self.cfg.train.clip_norm));
        let lrs = self.sched.step();
        let optim = &mut self.optim;
        let model = on_compute_pool(|| optim.step(lrs, model, grads));
        Ok((model, StepLog { values: vec![("loss", loss_v)], grad_norm: norm, lr, non_finite: None }))
    }

    fn evaluate(&self, model: &M) -> Result<EvalResult> {
        let d = self.data;
        evaluate(&model.valid(), d.dev.clone(), d.loader.clone(), self.cfg.train.batch_size * 2, &self.eval_device, &d.labels)
    }

    fn save_last(&self, root: &Path, model: &M, state: &TrainState) -> Result<()> {
        checkpoint::save(root, "last", model, Some(&self.optim), state)
    }

    fn restore(&mut self, optimizer: Option<burn::tensor::Bytes>, _dir: &Path, step: usize) -> Result<()> {
        if let Some(b) = optimizer {
            crate::optim::restore_optimizer(&mut self.optim, b, "optimizer")?;
        }
        self.sched.skip(step);
        Ok(())
    }
}

/// Train a post model (concat, MuSE, CLFA) on `data` under `cfg` with [`SingleStep`] updates,
/// writing checkpoints and `metrics.jsonl` to `run_dir`. `device` must be an autodiff device.
/// Returns the model after the last step.
pub fn fit<M: TaskModel>(model: M, cfg: &RunConfig, data: &TrainData, run_dir: &Path, opts: &TrainOptions, device: &Device) -> Result<(M, FitOutcome)> {
    train_loop(SingleStep::new(cfg, data, device)?, model, cfg, run_dir, opts, device)
}

/// The one training loop: epochs over a seeded order of the train split, one
/// [`UpdateStrategy::update`] per batch, dev evaluation every `train.eval_every` steps (or per
/// epoch), `best` and `last` checkpoints (atomic), early stopping, exact resume from `last`,
/// `--stop-after`, progress bar, `metrics.jsonl`, and a stop with the last good checkpoint when a
/// loss or the gradient norm is not finite. `device` must be an autodiff device.
pub fn train_loop<S: UpdateStrategy>(
    mut strategy: S,
    model: S::Model,
    cfg: &RunConfig,
    run_dir: &Path,
    opts: &TrainOptions,
    device: &Device,
) -> Result<(S::Model, FitOutcome)> {
    let t = &cfg.train;
    std::fs::create_dir_all(run_dir).with_context(|| format!("cannot create run folder {}", run_dir.display()))?;
    let n = strategy.n_train();
    if n == 0 {
        bail!("the train split is empty");
    }
    let (total, batches_per_epoch) = schedule_len(t, n);
    let ckpt_root = run_dir.join("checkpoints");
    let metrics = metrics_path(run_dir);
    let select = cfg.select_metric();

    let mut model = freeze_for(model, cfg)?;
    let mut state = TrainState::default();
    if opts.resume {
        match checkpoint::load(&ckpt_root, "last")? {
            Some(ck) => {
                model = model.try_load_record(ck.model).context("checkpoint does not match the model")?;
                strategy.restore(ck.optimizer, &ck.dir, ck.state.step)?;
                state = ck.state;
                model = freeze_for(model, cfg)?;
                truncate_metrics(&metrics, state.step)?;
                tracing::info!("resumed from {} at step {}", ck.dir.display(), state.step);
            }
            None => {
                tracing::warn!("--resume: no checkpoint in {}, starting from scratch", ckpt_root.display());
                // rows a killed earlier attempt logged before its first checkpoint
                truncate_metrics(&metrics, 0)?;
            }
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
    let log_every = (batches_per_epoch / 10).clamp(1, 50);
    // dev evaluation and the `last` checkpoint, for the shared book-keeping
    let eval_of = |s: &S, model: &S::Model, state: &mut TrainState| -> Result<bool> {
        let res = s.evaluate(model)?;
        if let Some(h) = &opts.progress {
            (h.0)(&Progress::Eval { epoch: state.epoch, step: state.step, scores: &res.scores });
        }
        record_eval(model, state, &res.scores, &select, t.patience, &ckpt_root, &metrics)
    };

    'epochs: while state.epoch < t.epochs {
        let order = epoch_order(n, t.seed, state.epoch);
        let skip = (state.batch_in_epoch * t.batch_size).min(n);
        for batch in strategy.batches(&model, order[skip..].to_vec()) {
            if state.step >= total {
                break 'epochs;
            }
            let batch = batch?;
            device.seed(step_seed(t.seed, state.step));
            let (next, log) = strategy.update(model, batch, state.step)?;
            model = next;
            if let Some((name, v)) = log.non_finite {
                bail!(
                    "the training {name} is {v} at step {} (epoch {}); stopping. The last good checkpoint is {} (step of the last evaluation); try a lower train.lr or a smaller train.clip_norm",
                    state.step + 1,
                    state.epoch + 1,
                    ckpt_root.join("last").display()
                );
            }
            if !log.grad_norm.is_finite() {
                bail!(
                    "the gradient norm is {} at step {}; stopping with the last good checkpoint in {}",
                    log.grad_norm,
                    state.step + 1,
                    ckpt_root.join("last").display()
                );
            }
            state.step += 1;
            state.batch_in_epoch += 1;
            steps_this_call += 1;
            if state.log_sums.is_empty() {
                state.log_sums = log.values.iter().map(|(k, _)| (k.to_string(), 0.0)).collect();
            }
            for (r, (_, v)) in state.log_sums.iter_mut().zip(&log.values) {
                r.1 += v;
            }
            state.log_steps += 1;
            if state.step % log_every == 0 {
                let k = state.log_steps as f64;
                let mut row = json!({"step": state.step, "epoch": state.epoch});
                for (key, sum) in &state.log_sums {
                    row[key.as_str()] = json!(sum / k);
                }
                row["lr"] = json!(log.lr);
                row["grad_norm"] = json!(log.grad_norm);
                append_row(&metrics, &row)?;
                if let Some((key, sum)) = state.log_sums.first() {
                    pb.set_message(format!("{key} {:.4}", sum / k));
                }
                state.log_sums.clear();
                state.log_steps = 0;
            }
            pb.set_position(state.step as u64);
            let go_on = opts.progress.as_ref().is_none_or(|h| (h.0)(&Progress::Step { epoch: state.epoch, step: state.step, total, values: &log.values }));
            let stop_now = !go_on || opts.stop_after.is_some_and(|s| steps_this_call >= s);
            let s = &strategy;
            let eval = |m: &S::Model, st: &mut TrainState| eval_of(s, m, st);
            let save = |m: &S::Model, st: &TrainState| s.save_last(&ckpt_root, m, st);
            if let Some(e) = after_step(t, &mut state, stop_now, &model, &eval, &save)? {
                ending = e;
                break 'epochs;
            }
        }
        let s = &strategy;
        let eval = |m: &S::Model, st: &mut TrainState| eval_of(s, m, st);
        if let Some(e) = after_epoch(t, &mut state, &model, &eval, &|m: &S::Model, st: &TrainState| s.save_last(&ckpt_root, m, st))? {
            ending = e;
            break;
        }
    }
    let s = &strategy;
    let eval = |m: &S::Model, st: &mut TrainState| eval_of(s, m, st);
    let outcome = finish(t, state, &model, ending, &eval, &|m: &S::Model, st: &TrainState| s.save_last(&ckpt_root, m, st))?;
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
