//! Run folders written by an earlier mmfuse keep loading and predicting the same.
//!
//! `fixtures/legacy-runs/` holds two run folders written by mmfuse before the kernels crate, the
//! model registry and the per-method model configs (commit dadbf66): a concat NER tagger with
//! a CRF and a MuSE classifier, trained briefly on the synthetic corpus, with the flat `[model]`
//! section of that release (every method's keys, prefixed `clfa_`, `mim_`). Beside them are a
//! few posts and the predictions that release's `mmfuse predict` wrote for them
//! (`*-expected.jsonl`): the tags and labels must be the same, the probabilities within 1e-5
//! (answers have since gained a `modalities` field).

use burn::tensor::Device;
use mmfuse_predict::Predictor;
use mmfuse_predict::file::predict_file;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-runs")
}

fn predict(run: &str, posts: &str) -> Vec<serde_json::Value> {
    let p = Predictor::load(&fixtures().join(run), &Device::flex()).unwrap_or_else(|e| panic!("{run}: {e:#}"));
    let mut out = Vec::new();
    let report = predict_file(&p, &fixtures().join(posts), &mut out, 4, true).unwrap();
    assert!(report.bad.is_empty(), "{:?}", report.bad.iter().map(|b| &b.reason).collect::<Vec<_>>());
    String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn expected(file: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(fixtures().join(file)).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn an_old_concat_ner_run_tags_as_before() {
    let (mut got, want) = (predict("ner-concat", "ner-posts.jsonl"), expected("ner-expected.jsonl"));
    assert_eq!(got.len(), 6);
    assert!(want.iter().any(|v| !v["entities"].as_array().unwrap().is_empty()), "the fixture finds entities");
    // answers now also say which modalities they used (every post here has its image)
    for g in got.iter_mut() {
        assert_eq!(g.as_object_mut().unwrap().remove("modalities"), Some(serde_json::json!(["text", "image"])));
    }
    assert_eq!(got, want);
}

#[test]
fn an_old_muse_run_classifies_as_before() {
    let (got, want) = (predict("cls-muse", "cls-posts.jsonl"), expected("cls-expected.jsonl"));
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["id"], w["id"]);
        assert_eq!(g["label"], w["label"]);
        let (gp, wp) = (g["probs"].as_object().unwrap(), w["probs"].as_object().unwrap());
        assert_eq!(gp.len(), wp.len());
        for (k, v) in wp {
            let d = (gp[k].as_f64().unwrap() - v.as_f64().unwrap()).abs();
            assert!(d < 1e-5, "{}: p({k}) differs by {d}", w["id"]);
        }
    }
}
