//! `mmfuse sweep`: one config trained with several seeds, and the mean and sample standard
//! deviation of every test score over them (`sweep.json`).

use crate::config::RunConfig;
use crate::run::run_training;
use crate::trainer::TrainOptions;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One test metric over the seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeedStats {
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 with one run.
    pub std: f64,
    pub values: Vec<f64>,
}

impl SeedStats {
    pub fn of(values: Vec<f64>) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = if values.len() > 1 { (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
        Self { mean, std, values }
    }
}

/// What `sweep.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct SweepSummary {
    pub seeds: Vec<u64>,
    pub test: BTreeMap<String, SeedStats>,
}

/// Train `config` (with `overrides`) once per seed into `out/seed-<seed>`, then write
/// `out/sweep.json`.
pub fn run_sweep(config: &Path, overrides: &[String], seeds: &[u64], out: &Path, quiet: bool) -> Result<SweepSummary> {
    let mut per_metric: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for seed in seeds {
        let mut o = overrides.to_vec();
        o.push(format!("train.seed={seed}"));
        let cfg = RunConfig::load(config, &o)?;
        let run = out.join(format!("seed-{seed}"));
        let s = run_training(&cfg, &run, &TrainOptions { quiet, ..Default::default() }).with_context(|| format!("training run {}", run.display()))?;
        for (k, v) in s.test.map(|t| t.scores).unwrap_or_default() {
            per_metric.entry(k).or_default().push(v);
        }
    }
    let summary = SweepSummary { seeds: seeds.to_vec(), test: per_metric.into_iter().map(|(k, v)| (k, SeedStats::of(v))).collect() };
    crate::checkpoint::write_atomic(&out.join("sweep.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_standard_deviation_by_hand() {
        // mean 2, squared deviations 1 + 0 + 1 = 2, / (3 − 1) = 1
        let s = SeedStats::of(vec![1.0, 2.0, 3.0]);
        assert_eq!((s.mean, s.std), (2.0, 1.0));
        assert_eq!(SeedStats::of(vec![0.5]).std, 0.0);
    }
}
