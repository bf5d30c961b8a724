//! Fuzzing of run folders (issue 20): a trained run folder with one of the files `Predictor::load`
//! reads damaged by random byte edits (config.toml, labels.json, tokenizer.json, the best
//! checkpoint's model.bpk and manifest.json — with and without the manifest, so that damaged
//! weights reach the record parser instead of failing the checksum). Loading must return an
//! error or a predictor, and a loaded predictor must answer a post: no panic. Damaged weights
//! under a manifest must be an error (found here: the predictor did not check the manifest and
//! loaded flipped weights). `PROPTEST_CASES`
//! raises the number of cases (CI: 256).

use burn::tensor::Device;
use mmfuse_data::synth::{SynthConfig, generate};
use mmfuse_predict::{ImageInput, Post, Predictor};
use mmfuse_testkit::proptest::prelude::*;
use mmfuse_testkit::{cases, edits, mutate};
use mmfuse_train::{TrainOptions, run_training};
mod common;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The files of a run folder that prediction reads.
const FILES: [&str; 5] = ["config.toml", "labels.json", "tokenizer.json", "checkpoints/best/model.bpk", "checkpoints/best/manifest.json"];

fn tmp() -> PathBuf {
    std::env::temp_dir().join(format!("mmfuse-fuzz-run-{}", std::process::id()))
}

/// A tiny classification run, trained once; its files' bytes.
fn seed_run() -> &'static Vec<Vec<u8>> {
    static S: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tmp();
        generate(&dir.join("corpus"), &SynthConfig { seed: 3, n_train: 64, n_dev: 16, n_test: 8, ..Default::default() }).unwrap();
        let cfg = common::tiny_config(&dir.join("corpus/cls"), "classify", &["train.epochs=1".into()]);
        run_training(&cfg, &dir.join("run"), &TrainOptions { quiet: true, ..Default::default() }).unwrap();
        FILES.iter().map(|f| std::fs::read(dir.join("run").join(f)).unwrap()).collect()
    })
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn damaged_run_folders_never_panic(e in edits(), which in 0usize..FILES.len(), keep_manifest: bool) {
        let seeds = seed_run();
        let run = tmp().join(format!("case-{}", std::thread::current().name().unwrap_or("t").replace("::", "-")));
        let _ = std::fs::remove_dir_all(&run);
        std::fs::create_dir_all(run.join("checkpoints/best")).unwrap();
        for (k, (f, bytes)) in FILES.iter().zip(seeds).enumerate() {
            if *f == "checkpoints/best/manifest.json" && !keep_manifest && which != k {
                continue;
            }
            std::fs::write(run.join(f), if k == which { mutate(bytes, &e) } else { bytes.clone() }).unwrap();
        }
        // an edit that changed nothing leaves a good run folder: it must load and predict (so
        // the harness itself is checked)
        let intact = mutate(&seeds[which], &e) == seeds[which];
        match Predictor::load(&run, &Device::flex()) {
            Ok(p) => {
                // damaged weights under a manifest must be caught (they would predict wrong numbers)
                prop_assert!(intact || FILES[which] != "checkpoints/best/model.bpk" || !keep_manifest, "damaged weights loaded despite the manifest");
                let post = Post { id: None, text: "good day".into(), image: ImageInput::None, ocr: None };
                let out = p.predict(vec![post]);
                prop_assert!(!intact || out[0].is_ok(), "the intact run folder did not predict: {:?}", out[0].as_ref().err());
            }
            Err(err) => prop_assert!(!intact, "the intact run folder did not load: {err:#}"),
        }
    }
}
