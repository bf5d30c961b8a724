//! `mmfuse predict` gives exactly the predictions the evaluator scored: predicting the test
//! split of a trained run from raw posts reproduces the run's test scores in `results.json`.

use burn::tensor::Device;
use mmfuse_data::synth::{SynthConfig, generate};
use mmfuse_metrics::cls::cls_scores;
use mmfuse_metrics::ner::{ChunkMode, ner_scores};
use mmfuse_predict::file::predict_file;
use mmfuse_predict::{ImageInput, Output, Post, Predictor};
use mmfuse_train::{RunConfig, TrainOptions, run_training};
use std::path::Path;

const SMALL: [&str; 10] = [
    "data.max_len=16",
    "model.d_model=32",
    "model.n_heads=2",
    "model.d_ff=64",
    "model.n_layers=1",
    "model.cnn_channels=[8,16]",
    "model.concat.d_hidden=32",
    "train.batch_size=32",
    "train.epochs=2",
    "train.lr=3e-3",
];

fn train(corpus: &Path, task: &str, sub: &str, run: &Path) -> serde_json::Value {
    let mut o: Vec<String> = SMALL.iter().map(|s| s.to_string()).collect();
    o.push(format!("data.dir=\"{}\"", corpus.join(sub).display()));
    let cfg = RunConfig::from_toml_str(&format!("[data]\ntask = \"{task}\"\ndir = \"x\"\n[model]\n[train]\n"), &o).unwrap();
    run_training(&cfg, run, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap()
}

#[test]
fn predictions_reproduce_the_evaluated_test_scores() {
    let dir = std::env::temp_dir().join(format!("mmfuse-predict-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let corpus = dir.join("corpus");
    generate(&corpus, &SynthConfig { seed: 9, n_train: 400, n_dev: 64, n_test: 96, ..Default::default() }).unwrap();
    let device = Device::flex();

    // classification: predict the test JSONL file as a user would
    let results = train(&corpus, "classify", "cls", &dir.join("cls-run"));
    let p = Predictor::load(&dir.join("cls-run"), &device).unwrap();
    let mut out = Vec::new();
    let report = predict_file(&p, &corpus.join("cls/test.jsonl"), &mut out, 7, true).unwrap();
    assert_eq!(report.predicted, 96);
    assert!(report.bad.is_empty());
    let (gold, _) = mmfuse_data::cls::read_jsonl(&corpus.join("cls/test.jsonl")).unwrap();
    let labels = p.labels().clone();
    let mut g = Vec::new();
    let mut pr = Vec::new();
    for (line, s) in String::from_utf8(out).unwrap().lines().zip(&gold) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["id"], s.id.as_str());
        g.push(labels.index(&s.label).unwrap());
        pr.push(labels.index(v["label"].as_str().unwrap()).unwrap());
        let total: f64 = v["probs"].as_object().unwrap().values().map(|x| x.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-4);
    }
    let acc = cls_scores(&g, &pr, labels.len()).unwrap().accuracy;
    assert!((acc - results["test"]["accuracy"].as_f64().unwrap()).abs() < 1e-12, "accuracy {acc} vs {}", results["test"]["accuracy"]);

    // text-only and image-only posts: the output says which modalities were used; a post with
    // neither is an error
    let image = ImageInput::Path(corpus.join("cls").join(gold[0].image.as_deref().unwrap()));
    let post = |text: &str, image: ImageInput| Post { id: None, text: text.into(), image, ocr: None };
    let out = p.predict(vec![post(&gold[0].text, image.clone()), post(&gold[0].text, ImageInput::None), post("", image.clone()), post(" ", ImageInput::None)]);
    let used = |i: usize| out[i].as_ref().unwrap().modalities.clone();
    assert_eq!((used(0), used(1), used(2)), (vec!["text", "image"], vec!["text"], vec!["image"]));
    assert!(out[..3].iter().all(|r| !r.as_ref().unwrap().placeholder_image));
    assert_eq!(out[3].as_ref().unwrap_err().to_string(), "the post has neither a text nor an image");
    let json = serde_json::to_value(out[1].as_ref().unwrap()).unwrap();
    assert_eq!(json["modalities"], serde_json::json!(["text"]));
    assert!(json.get("placeholder_image").is_none(), "{json}");
    // each of the three is a different input to the model
    let probs = |i: usize| match &out[i].as_ref().unwrap().output {
        Output::Classes { probs, .. } => probs.values().copied().collect::<Vec<f32>>(),
        other => panic!("expected a label, got {other:?}"),
    };
    assert!(probs(0) != probs(1) && probs(1) != probs(2) && probs(0) != probs(2));

    // a run trained as the reference code does: a grey placeholder stands in and says so
    let mut o: Vec<String> = SMALL.iter().map(|s| s.to_string()).collect();
    o.push(format!("data.dir=\"{}\"", corpus.join("cls").display()));
    o.push("data.missing_image=\"reference_placeholder\"".into());
    o.push("train.epochs=1".into());
    let cfg = RunConfig::from_toml_str("[data]\ntask = \"classify\"\ndir = \"x\"\n[model]\n[train]\n", &o).unwrap();
    run_training(&cfg, &dir.join("cls-reference"), &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    let reference = Predictor::load(&dir.join("cls-reference"), &device).unwrap();
    let r = reference.predict(vec![post(&gold[0].text, ImageInput::None)]).pop().unwrap().unwrap();
    assert!(r.placeholder_image);
    assert_eq!(r.modalities, vec!["text"]);

    // NER: raw text (words joined by spaces) + image path
    let results = train(&corpus, "ner", "ner", &dir.join("ner-run"));
    let p = Predictor::load(&dir.join("ner-run"), &device).unwrap();
    let (samples, _) = mmfuse_data::conll::read_conll(&corpus.join("ner/test.txt"), &Default::default()).unwrap();
    let posts: Vec<Post> = samples
        .iter()
        .map(|s| Post { id: Some(s.id.clone()), text: s.words.join(" "), image: ImageInput::Path(corpus.join(format!("ner/images/{}.png", s.id))), ocr: None })
        .collect();
    let mut pred_tags = Vec::new();
    for (r, s) in p.predict(posts).into_iter().zip(&samples) {
        let r = r.unwrap();
        let Output::Entities { words, tags, entities } = r.output else { panic!("expected entities") };
        assert_eq!(words, s.words);
        for e in &entities {
            // character spans point at the entity's text
            let text: String = s.words.join(" ").chars().skip(e.start_char).take(e.end_char - e.start_char).collect();
            assert_eq!(text, e.text);
        }
        pred_tags.push(tags);
    }
    let gold: Vec<Vec<String>> = samples.iter().map(|s| s.tags.clone()).collect();
    let m = ner_scores(&gold, &pred_tags, ChunkMode::Strict).unwrap().micro;
    let r = &results["test"]["micro"];
    let counts = (m.support as u64, m.predicted as u64, m.correct as u64);
    assert_eq!(counts, (r["gold"].as_u64().unwrap(), r["predicted"].as_u64().unwrap(), r["correct"].as_u64().unwrap()), "gold, predicted, correct");
    // serde_json parses floats to within an ulp (no `float_roundtrip`): the counts above are the
    // exact check
    assert!((m.f1 - r["f1"].as_f64().unwrap()).abs() < 1e-12, "F1 {} vs {}", m.f1, r["f1"]);

    // CSV input with a header, a missing image (placeholder) and bad rows reported by line
    let csv = dir.join("posts.csv");
    let first = &samples[0];
    std::fs::write(
        &csv,
        format!(
            "id,text,image\n{},\"{}\",corpus/ner/images/{}.png\nx2,no image here,\nx3,,\nx4,broken image,nope.png\n",
            first.id,
            first.words.join(" "),
            first.id
        ),
    )
    .unwrap();
    let mut out = Vec::new();
    let report = predict_file(&p, &csv, &mut out, 2, true).unwrap();
    assert_eq!(report.predicted, 2);
    assert_eq!(report.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(report.bad[0].reason, "empty text: a tagger needs words to tag");
    assert!(report.bad[1].reason.contains("nope.png"), "{}", report.bad[1].reason);
    let rows: Vec<serde_json::Value> = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows[0]["tags"], serde_json::json!(pred_tags[0]));
    assert_eq!(rows[1]["modalities"], serde_json::json!(["text"]), "a post without an image is text-only");
    assert!(rows[1].get("placeholder_image").is_none());

    // bad input: empty text and an unreadable image are per-post errors
    let bad = p.predict(vec![
        Post { id: None, text: "  ".into(), image: ImageInput::None, ocr: None },
        Post { id: None, text: "hello".into(), image: ImageInput::Bytes(b"\x89PNG garbage".to_vec()), ocr: None },
        Post { id: None, text: "hello Kalo".into(), image: ImageInput::None, ocr: None },
    ]);
    assert_eq!(bad[0].as_ref().unwrap_err().to_string(), "empty text: a tagger needs words to tag");
    assert!(bad[1].as_ref().unwrap_err().to_string().contains("cannot decode image <upload>"));
    assert_eq!(bad[2].as_ref().unwrap().modalities, vec!["text"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// CLFA with the OCR stream and lexicon biases: the run folder carries what prediction needs
/// (`lexicon.tsv`), and predicting the test file (with its `ocr` fields) reproduces the run's
/// test accuracy exactly.
#[test]
fn clfa_with_ocr_and_lexicon_predicts_what_was_evaluated() {
    let dir = std::env::temp_dir().join(format!("mmfuse-predict-ocr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let corpus = dir.join("corpus");
    generate(&corpus, &SynthConfig { seed: 4, n_train: 300, n_dev: 64, n_test: 96, ..Default::default() }).unwrap();
    // OCR text on two posts out of three; a lexicon over some of the corpus' words
    let mut vocab = std::collections::BTreeSet::new();
    for f in ["train.jsonl", "dev.jsonl", "test.jsonl"] {
        let path = corpus.join("cls").join(f);
        let (samples, _) = mmfuse_data::cls::read_jsonl(&path).unwrap();
        let body: String = samples
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                vocab.extend(s.text.split_whitespace().map(str::to_string));
                s.ocr = (i % 3 != 0).then(|| format!("sale {} today", s.text.split_whitespace().next().unwrap_or("x")));
                serde_json::to_string(&s).unwrap() + "\n"
            })
            .collect();
        std::fs::write(&path, body).unwrap();
    }
    let lexicon = dir.join("lexicon.tsv");
    let lines: String = vocab.iter().step_by(3).enumerate().map(|(i, w)| format!("{w}\t{}\n", if i % 2 == 0 { 0.9 } else { -0.5 })).collect();
    std::fs::write(&lexicon, lines).unwrap();
    let mut o: Vec<String> = SMALL.iter().filter(|s| !s.starts_with("model.concat.")).map(|s| s.to_string()).collect();
    o.extend([
        format!("data.dir=\"{}\"", corpus.join("cls").display()),
        format!("data.lexicon=\"{}\"", lexicon.display()),
        "data.ocr_max_len=8".into(),
        "model.method=\"clfa\"".into(),
        "model.clfa.alpha=0.0".into(),
        "model.clfa.ocr=true".into(),
        "model.clfa.cross_layers=1".into(),
    ]);
    let cfg = RunConfig::from_toml_str("[data]\ntask = \"classify\"\ndir = \"x\"\n[model]\n[train]\n", &o).unwrap();
    let run = dir.join("run");
    run_training(&cfg, &run, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["data"]["posts_without_ocr"], 154, "a third of 460 posts (ids 0, 3, … per split) have no OCR text");
    std::fs::remove_file(&lexicon).unwrap(); // the run folder has its own copy
    let p = Predictor::load(&run, &Device::flex()).unwrap();
    let mut out = Vec::new();
    predict_file(&p, &corpus.join("cls/test.jsonl"), &mut out, 5, true).unwrap();
    let (gold, _) = mmfuse_data::cls::read_jsonl(&corpus.join("cls/test.jsonl")).unwrap();
    let right = String::from_utf8(out)
        .unwrap()
        .lines()
        .zip(&gold)
        .filter(|(l, s)| serde_json::from_str::<serde_json::Value>(l).unwrap()["label"] == s.label.as_str())
        .count();
    let acc = results["test"]["accuracy"].as_f64().unwrap();
    assert!((right as f64 / gold.len() as f64 - acc).abs() < 1e-9, "predicted {right}/{} right, the run scored {acc}", gold.len());
    // the OCR text is read: another OCR text changes a post's probabilities
    let post = |ocr: &str| Post { id: None, text: gold[1].text.clone(), image: ImageInput::None, ocr: Some(ocr.into()) };
    let a = p.predict(vec![post("sale today")]).pop().unwrap().unwrap();
    let b = p.predict(vec![post("nothing like it at all")]).pop().unwrap().unwrap();
    assert_ne!(a.output, b.output);
    let _ = std::fs::remove_dir_all(&dir);
}
