//! The dynamic batching queue: handlers send prepared inputs ([`Job`]); one model thread
//! gathers up to `max_batch` of them, waiting at most `max_wait_ms` after the first (and only
//! while more are on their way), runs them as one batch through the [`Predictor`] and answers
//! each job on its own channel. No HTTP here.

use crate::ServeConfig;
use crate::metrics::Metrics;
use mmfuse_predict::{AlignedPost, Post, PredictResult, Predictor};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub(crate) type Reply = oneshot::Sender<Result<PredictResult, String>>;

/// What a job carries: a post with its decoded image, or a MIM segment.
pub(crate) enum Input {
    Post { post: Post, image: Vec<f32>, no_image: bool },
    Segment(AlignedPost),
}

pub(crate) struct Job {
    pub input: Input,
    pub reply: Reply,
}

/// Start the model thread; returns the queue it reads.
pub(crate) fn spawn_batcher(predictor: Arc<Predictor>, cfg: Arc<ServeConfig>, metrics: Arc<Metrics>, in_flight: Arc<AtomicUsize>) -> std_mpsc::Sender<Job> {
    let (tx, rx) = std_mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("mmfuse-model".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut jobs = vec![first];
                let deadline = Instant::now() + Duration::from_millis(cfg.max_wait_ms);
                // wait for more posts only while more are on their way (alone, a post runs at once)
                while jobs.len() < cfg.max_batch.min(in_flight.load(Ordering::SeqCst).max(1)) {
                    let now = Instant::now();
                    if now >= deadline {
                        while jobs.len() < cfg.max_batch {
                            match rx.try_recv() {
                                Ok(j) => jobs.push(j),
                                Err(_) => break,
                            }
                        }
                        break;
                    }
                    match rx.recv_timeout(deadline - now) {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                // requests whose client gave up are dropped before computing
                jobs.retain(|j| !j.reply.is_closed());
                if jobs.is_empty() {
                    continue;
                }
                metrics.observe_batch(jobs.len());
                run_batch(&predictor, jobs);
            }
        })
        .expect("spawn the model thread");
    tx
}

/// Run one gathered batch and answer every job (a server's model takes one kind of input; a
/// job of the other kind gets an error).
fn run_batch(predictor: &Predictor, jobs: Vec<Job>) {
    let (mut posts, mut segments) = (Vec::new(), Vec::new());
    for j in jobs {
        match j.input {
            Input::Post { post, image, no_image } => posts.push(((post, image, no_image), j.reply)),
            Input::Segment(s) => segments.push((s, j.reply)),
        }
    }
    if !posts.is_empty() {
        let (prepared, replies): (Vec<_>, Vec<_>) = posts.into_iter().unzip();
        match predictor.predict_prepared(&prepared) {
            Ok(results) => {
                for (r, reply) in results.into_iter().zip(replies) {
                    let _ = reply.send(Ok(r));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(format!("{e:#}")));
                }
            }
        }
    }
    if !segments.is_empty() {
        let (inputs, replies): (Vec<_>, Vec<_>) = segments.into_iter().unzip();
        for (r, reply) in predictor.predict_aligned(&inputs).into_iter().zip(replies) {
            let _ = reply.send(r.map_err(|e| format!("{e:#}")));
        }
    }
}
