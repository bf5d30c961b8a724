//! The demo's promise, as a test that fails when fusion is broken: on the synthetic corpus,
//! whose labels need both modalities, the fused model beats the text-only and the image-only
//! model by a clear margin on both tasks.
//!
//! Best reachable test scores by construction (see `mmfuse_data::synth`): classification
//! accuracy text-only ≈ image-only ≈ 50 %, fused 100 %; NER entity F1 text-only ≈ 25 %,
//! image-only ≈ 0, fused 100 %.

use mmfuse::demo::{DemoOptions, format_table, run_demo};
use mmfuse_models::fusion::Modality;

#[test]
fn fused_beats_both_unimodal_models() {
    let out = std::env::temp_dir().join(format!("mmfuse-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let opts = DemoOptions { seed: 7, n_train: 2500, n_dev: 200, n_test: 400, overrides: vec![], quiet: true, ..Default::default() };
    let rows = run_demo(&out, &opts).expect("demo runs");
    eprintln!("{}", format_table(&rows));
    for task in ["classify", "ner"] {
        let score = |m: Modality| rows.iter().find(|r| r.task == task && r.modality == m).expect("row").test;
        let (t, i, f) = (score(Modality::Text), score(Modality::Image), score(Modality::Fused));
        // unimodal models cannot exceed their optimum by much (sampling noise only)
        let (t_max, i_max) = if task == "classify" { (0.60, 0.60) } else { (0.40, 0.10) };
        assert!(t <= t_max, "{task}: text-only scored {t:.3}, above its reachable optimum — the corpus leaks the label into the text");
        assert!(i <= i_max, "{task}: image-only scored {i:.3}, above its reachable optimum — the corpus leaks the label into the image");
        assert!(f >= 0.85, "{task}: fused scored only {f:.3}");
        assert!(f - t.max(i) >= 0.30, "{task}: fused {f:.3} does not clearly beat text {t:.3} / image {i:.3}");
        // the run folder is complete
        let run = &rows.iter().find(|r| r.task == task && r.modality == Modality::Fused).unwrap().run_dir;
        for f in [
            "config.toml",
            "tokenizer.json",
            "labels.json",
            "metrics.jsonl",
            "results.json",
            "curves.png",
            "checkpoints/best/model.bpk",
            "checkpoints/last/optimizer.bpk",
        ] {
            assert!(run.join(f).exists(), "{} is missing", run.join(f).display());
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// MuSE on the synthetic classification task beats the unimodal baselines by the margin the
/// corpus guarantees (small config: this runs in CI).
#[test]
fn muse_and_clfa_beat_both_unimodal_models() {
    let out = std::env::temp_dir().join(format!("mmfuse-muse-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let opts = DemoOptions {
        seed: 11,
        n_train: 1500,
        n_dev: 200,
        n_test: 400,
        overrides: vec!["train.epochs=6".into(), "model.muse.cross_layers=3".into(), "model.muse.exchange_end_layer=2".into()],
        quiet: true,
        tasks: vec!["classify".into()],
        muse: true,
        clfa: true,
        mim: false,
        robustness: false,
    };
    let rows = run_demo(&out, &opts).expect("demo runs");
    eprintln!("{}", format_table(&rows));
    let score = |method: &str, m: Modality| rows.iter().find(|r| r.method == method && r.modality == m).expect("row").test;
    let (t, i, muse) = (score("concat", Modality::Text), score("concat", Modality::Image), score("muse", Modality::Fused));
    assert!(muse >= 0.9, "MuSE scored only {muse:.3}");
    assert!(muse - t.max(i) >= 0.3, "MuSE {muse:.3} does not clearly beat text {t:.3} / image {i:.3}");
    let clfa = score("clfa", Modality::Fused);
    assert!(clfa >= 0.9 && clfa - t.max(i) >= 0.3, "CLFA {clfa:.3} does not clearly beat text {t:.3} / image {i:.3}");
    let _ = std::fs::remove_dir_all(&out);
}
