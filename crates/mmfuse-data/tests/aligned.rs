//! Word-aligned features: pickle readers against values written by Python
//! (`scripts/make_aligned_fixtures.py`), numpy dtypes, inert globals, MAG-BERT's word-piece
//! expansion, our directory layout, and the synthetic corpus.

use mmfuse_data::aligned::{self, AlignedDataset, AlignedSample, AlignedSplit};
use mmfuse_data::aligned_synth::{self, AlignedSynthConfig, NEGATIVE_WORDS, POSITIVE_WORDS};
use mmfuse_data::pickle::{self, ArrayData, Value};
use mmfuse_data::text::{TextTokenizer, train_word_tokenizer};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aligned")
}

fn expected() -> Json {
    let p = fixtures().join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmfuse-aligned-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn f32s(j: &Json) -> Vec<f32> {
    j.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn strs(j: &Json) -> Vec<String> {
    j.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

/// Every value of every sample equals Python's.
fn check_split(split: &AlignedSplit, exp: &Json, name: &str, dims: (usize, usize)) {
    let exp = exp.as_array().unwrap();
    assert_eq!(split.len(), exp.len(), "{name}: sample count");
    assert_eq!((split.audio_dim, split.video_dim), dims, "{name}: dims");
    for (i, (s, e)) in split.samples.iter().zip(exp).enumerate() {
        let at = format!("{name}[{i}]");
        assert_eq!(s.id, e["id"].as_str().unwrap(), "{at}");
        assert_eq!(s.words, strs(&e["words"]), "{at}");
        assert_eq!(s.label, e["label"].as_f64().unwrap() as f32, "{at}");
        assert_eq!(s.steps, e["steps"].as_u64().unwrap() as usize, "{at}");
        assert_eq!(s.audio, f32s(&e["audio"]), "{at} audio");
        assert_eq!(s.video, f32s(&e["video"]), "{at} video");
        let ids = e.get("token_ids").map(|t| t.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect::<Vec<_>>());
        assert_eq!(s.token_ids, ids, "{at}");
        assert_eq!(s.noisy, None, "{at}");
    }
}

#[test]
fn mag_bert_pickles_of_protocols_2_4_5_match_python() {
    let exp = expected();
    let mag = &exp["mag"];
    let dims = (mag["audio_dim"].as_u64().unwrap() as usize, mag["video_dim"].as_u64().unwrap() as usize);
    for name in ["mag_p2.pkl", "mag_p4.pkl", "mag_p5.pkl"] {
        let path = fixtures().join(name);
        let (ds, report) = aligned::read_mag_bert_report(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.non_finite as u64, mag["non_finite"].as_u64().unwrap(), "{name}");
        for (split, s) in ds.splits() {
            check_split(s, &mag["splits"][split], &format!("{name} {split}"), dims);
        }
        assert_eq!(aligned::read_any(&path).unwrap(), ds, "{name}: read_any sniffs MAG-BERT");
        assert_eq!(aligned::read_mag_bert(&path).unwrap(), ds);
        // the MMSA reader refuses it with a clear error naming the file
        let e = aligned::read_mmsa(&path).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains("train: expected a dict of arrays (MMSA), found list"), "{e}");
    }
}

#[test]
fn mmsa_pickle_matches_python() {
    let exp = expected();
    let m = &exp["mmsa"];
    let dims = (m["audio_dim"].as_u64().unwrap() as usize, m["video_dim"].as_u64().unwrap() as usize);
    let path = fixtures().join("mmsa.pkl");
    let ds = aligned::read_mmsa(&path).unwrap_or_else(|e| panic!("{e}"));
    for (split, s) in ds.splits() {
        check_split(s, &m["splits"][split], split, dims);
    }
    assert_eq!(aligned::read_any(&path).unwrap(), ds, "read_any sniffs MMSA");
    let e = aligned::read_mag_bert(&path).unwrap_err().to_string();
    assert!(e.contains("mmsa.pkl") && e.contains("\"dev\""), "{e}");
}

#[test]
fn numpy_dtypes_fortran_order_and_scalars_decode() {
    let exp = expected();
    for name in ["dtypes.pkl", "dtypes_p5.pkl"] {
        let v = pickle::read_pickle(&fixtures().join(name)).unwrap_or_else(|e| panic!("{e}"));
        let keys = exp["dtypes"].as_object().unwrap();
        assert_eq!(v.keys().len(), keys.len());
        for (k, e) in keys {
            let a = v.get(k).and_then(Value::as_array).unwrap_or_else(|| panic!("{name} {k}: {:?}", v.get(k)));
            let shape: Vec<usize> = e["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
            assert_eq!(a.shape, shape, "{name} {k}");
            assert_eq!(a.data.dtype_name(), e["dtype"].as_str().unwrap(), "{name} {k}");
            let vals = e["values"].as_array().unwrap();
            assert_eq!(a.len(), vals.len(), "{name} {k}");
            match &a.data {
                ArrayData::Str(_) | ArrayData::Object(_) => assert_eq!(a.to_strings().unwrap(), strs(&e["values"]), "{name} {k}"),
                ArrayData::Bool(b) => assert_eq!(b, &vals.iter().map(|x| x.as_bool().unwrap()).collect::<Vec<_>>(), "{name} {k}"),
                ArrayData::I64(x) => assert_eq!(x, &vals.iter().map(|x| x.as_i64().unwrap()).collect::<Vec<_>>(), "{name} {k}"),
                ArrayData::F32(x) => assert_eq!(x, &vals.iter().map(|x| x.as_f64().unwrap() as f32).collect::<Vec<_>>(), "{name} {k}"),
                _ => assert_eq!(a.to_f64().unwrap(), vals.iter().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>(), "{name} {k}"),
            }
        }
        // spot checks that do not rely on the JSON
        let f = v.get("fortran").and_then(Value::as_array).unwrap();
        assert_eq!(f.to_f64().unwrap(), (0..24).map(|i| i as f64 * 0.5).collect::<Vec<_>>(), "Fortran data comes back in C order");
        assert_eq!(v.get("scalar_f4").and_then(Value::as_f64), Some(1.25));
        assert_eq!(v.get("be_f4").and_then(Value::as_array).unwrap().data, ArrayData::F32(vec![1.5, -2.0]));
        assert_eq!(v.get("U").and_then(Value::as_array).unwrap().to_strings().unwrap(), ["ab", "c", "dé", "xyz"]);
    }
}

#[test]
fn a_global_like_os_system_is_never_executed() {
    let exp = expected();
    let cmd = exp["evil_command"].as_str().unwrap();
    let marker = Path::new(cmd.strip_prefix("touch ").unwrap());
    let _ = std::fs::remove_file(marker);
    let v = pickle::read_pickle(&fixtures().join("evil.pkl")).unwrap();
    assert_eq!(v, Value::Object { module: "os".into(), name: "system".into(), args: vec![Value::Str(cmd.into())], state: None });
    assert!(!marker.exists());
    let e = aligned::read_mag_bert(&fixtures().join("mag_evil.pkl")).unwrap_err().to_string();
    assert!(e.contains("mag_evil.pkl") && e.contains("train[0]") && e.contains("object os.system (inert, never called)"), "{e}");
    let e = aligned::read_any(&fixtures().join("evil.pkl")).unwrap_err().to_string();
    assert!(e.contains("evil.pkl") && e.contains("os.system"), "{e}");
    assert!(!marker.exists());
}

#[test]
fn truncated_pickles_give_errors_not_panics() {
    let bytes = std::fs::read(fixtures().join("mag_p4.pkl")).unwrap();
    for n in 0..bytes.len() {
        assert!(pickle::parse(&bytes[..n]).is_err(), "prefix of {n} bytes parsed");
    }
    let dir = tmp_dir("trunc");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("cut.pkl");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = aligned::read_mag_bert(&p).unwrap_err().to_string();
    assert!(e.contains("cut.pkl") && e.contains("at byte"), "{e}");
    let e = aligned::read_any(&dir.join("absent.pkl")).unwrap_err().to_string();
    assert!(e.contains("absent.pkl"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn minilm() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/all-minilm-l6-v2/tokenizer.json");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("note: {} is absent; skipping the BERT part of this test", p.display());
        None
    }
}

fn sample(words: &[&str], audio: Vec<f32>, video: Vec<f32>) -> AlignedSample {
    AlignedSample {
        id: "s".into(),
        words: words.iter().map(|w| w.to_string()).collect(),
        token_ids: None,
        steps: words.len(),
        audio,
        video,
        label: 0.5,
        noisy: None,
    }
}

#[test]
fn wordpiece_expansion_repeats_rows_like_mag_bert() {
    // audio rows (k+1, 10(k+1)), video rows 100(k+1)
    let s = sample(&["George", "Zimmermannxq", "shot"], vec![1., 10., 2., 20., 3., 30.], vec![100., 200., 300.]);
    if let Some(p) = minilm() {
        let enc = TextTokenizer::from_file(&p, 10, true).unwrap();
        let r = aligned::expand_wordpieces(&s, &enc, 2, 1);
        // [CLS] george zimmerman ##nx ##q shot [SEP] pad pad pad
        let pieces: Vec<String> = r.ids[..7].iter().map(|&i| enc.tokenizer().id_to_token(i).unwrap()).collect();
        assert_eq!(pieces, ["[CLS]", "george", "zimmerman", "##nx", "##q", "shot", "[SEP]"]);
        assert_eq!(&r.ids[7..], [0, 0, 0]);
        assert_eq!(r.len, 7);
        assert_eq!(r.mask, [true, true, true, true, true, true, true, false, false, false]);
        #[rustfmt::skip]
        assert_eq!(r.audio, [0., 0., 1., 10., 2., 20., 2., 20., 2., 20., 3., 30., 0., 0., 0., 0., 0., 0., 0., 0.]);
        assert_eq!(r.video, [0., 100., 200., 200., 200., 300., 0., 0., 0., 0.]);
        // truncation to max_len - 2 pieces keeps rows aligned, [SEP] last with a zero row
        let short = TextTokenizer::from_file(&p, 5, true).unwrap();
        let r = aligned::expand_wordpieces(&s, &short, 2, 1);
        let pieces: Vec<String> = r.ids.iter().map(|&i| short.tokenizer().id_to_token(i).unwrap()).collect();
        assert_eq!(pieces, ["[CLS]", "george", "zimmerman", "##nx", "[SEP]"]);
        assert_eq!(r.audio, [0., 0., 1., 10., 2., 20., 2., 20., 0., 0.]);
        assert_eq!(r.video, [0., 100., 200., 200., 0.]);
        assert_eq!((r.len, r.mask), (5, vec![true; 5]));
    }
    // pre-tokenised ids (MMSA): used as they are, row k at position k
    let mut m = sample(&[], vec![1., 1., 2., 2., 3., 3., 4., 4.], vec![5., 6., 7., 8.]);
    m.token_ids = Some(vec![101, 7, 8, 102]);
    m.steps = 4;
    let wl = TextTokenizer::new(train_word_tokenizer(["a b".to_string()].into_iter(), 1, true).unwrap(), 6, false);
    let r = aligned::expand_wordpieces(&m, &wl, 2, 1);
    assert_eq!(r.ids, [101, 7, 8, 102, 0, 0]);
    assert_eq!(r.audio, [1., 1., 2., 2., 3., 3., 4., 4., 0., 0., 0., 0.]);
    assert_eq!(r.video, [5., 6., 7., 8., 0., 0.]);
    assert_eq!(r.len, 4);
    let r = aligned::expand_wordpieces(&m, &TextTokenizer::new(wl.tokenizer().clone(), 3, false), 2, 1);
    assert_eq!((r.ids, r.audio, r.len), (vec![101, 7, 8], vec![1., 1., 2., 2., 3., 3.], 3));
    // word-level tokenizer without [CLS]: one position per word
    let tok = train_word_tokenizer(["good movie".to_string()].into_iter(), 1, true).unwrap();
    let enc = TextTokenizer::new(tok, 4, false);
    let s = sample(&["good", "zebra", "movie"], vec![1., 2., 3.], vec![4., 5., 6.]);
    let r = aligned::expand_wordpieces(&s, &enc, 1, 1);
    assert_eq!(r.ids[1], 1, "unknown word → [UNK]");
    assert_eq!((r.audio, r.video, r.mask, r.len), (vec![1., 2., 3., 0.], vec![4., 5., 6., 0.], vec![true, true, true, false], 3));
    // with [CLS] prepended by the encoder, its row is zero
    let enc = TextTokenizer::new(enc.tokenizer().clone(), 4, true);
    let r = aligned::expand_wordpieces(&s, &enc, 1, 1);
    assert_eq!((r.ids[0], r.audio), (2, vec![0., 1., 2., 3.]));
}

fn mixed_dataset() -> AlignedDataset {
    let cfg = AlignedSynthConfig { n_train: 12, n_dev: 3, n_test: 0, seed: 5, ..Default::default() };
    let mut ds = aligned_synth::generate(&cfg);
    // a sample without noise flags and one with token ids, in a split that has flagged ones
    let mut extra = sample(&["ok", "then"], vec![0.25; 10], vec![-1.5; 14]);
    extra.label = -1.0 / 3.0;
    ds.train.samples.push(extra.clone());
    extra.token_ids = Some(vec![101, 5, 102]);
    extra.words.clear();
    extra.steps = 3;
    extra.audio = vec![f32::MIN_POSITIVE; 15];
    extra.video = vec![1e30; 21];
    ds.dev.samples.insert(0, extra);
    ds
}

#[test]
fn write_dir_then_read_dir_is_exact() {
    let dir = tmp_dir("roundtrip");
    let ds = mixed_dataset();
    aligned::write_dir(&ds, &dir).unwrap();
    let back = aligned::read_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, ds);
    assert_eq!(back.test.audio_dim, 5, "an empty split keeps its widths");
    assert_eq!(aligned::read_any(&dir).unwrap(), ds);
    // the pickle readers' output round-trips too; overwriting an existing folder works
    let mag = aligned::read_mag_bert(&fixtures().join("mag_p4.pkl")).unwrap();
    aligned::write_dir(&mag, &dir).unwrap();
    assert_eq!(aligned::read_dir(&dir).unwrap(), mag);
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n.to_string_lossy().contains(".tmp")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn malformed_directory_files_name_file_and_line() {
    let dir = tmp_dir("malformed");
    aligned::write_dir(&mixed_dataset(), &dir).unwrap();
    let p = dir.join("train.jsonl");
    let text = std::fs::read_to_string(&p).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "{\"id\": \"x\", \"words\": [\"a\"], \"label\": \"high\", \"steps\": 1}";
    std::fs::write(&p, lines.join("\n")).unwrap();
    let e = aligned::read_dir(&dir).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:2: ", p.display())), "{e}");
    lines[1] = "not json";
    std::fs::write(&p, lines.join("\n")).unwrap();
    let e = aligned::read_dir(&dir).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:2: ", p.display())), "{e}");
    // steps that disagree with the tensors
    aligned::write_dir(&mixed_dataset(), &dir).unwrap();
    let text = std::fs::read_to_string(&p).unwrap().replacen("\"steps\":", "\"steps\":1", 1);
    std::fs::write(&p, text).unwrap();
    let e = aligned::read_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("train.safetensors") && e.contains("audio"), "{e}");
    // a truncated tensor file
    aligned::write_dir(&mixed_dataset(), &dir).unwrap();
    let sp = dir.join("dev.safetensors");
    let b = std::fs::read(&sp).unwrap();
    std::fs::write(&sp, &b[..b.len() - 3]).unwrap();
    let e = aligned::read_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("dev.safetensors"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn synthetic_corpus_is_deterministic_and_follows_its_rules() {
    let cfg = AlignedSynthConfig { n_train: 300, n_dev: 41, n_test: 60, seed: 11, ..Default::default() };
    let ds = aligned_synth::generate(&cfg);
    assert_eq!(ds, aligned_synth::generate(&cfg));
    assert_ne!(ds.train.samples, aligned_synth::generate(&AlignedSynthConfig { seed: 12, ..cfg.clone() }).train.samples);
    for (name, split) in ds.splits() {
        assert_eq!((split.audio_dim, split.video_dim), (5, 7));
        let mut noisy = 0;
        let mut modality = vec![];
        for s in &split.samples {
            assert!((cfg.min_words..=cfg.max_words).contains(&s.steps), "{name}");
            assert_eq!((s.words.len(), s.audio.len(), s.video.len()), (s.steps, s.steps * 5, s.steps * 7));
            assert!((-3.0..=3.0).contains(&s.label));
            assert!(((s.label * 3.0).round() - s.label * 3.0).abs() < 1e-4, "labels are multiples of 1/3: {}", s.label);
            let (na, nv) = s.noisy.as_ref().unwrap();
            let (ca, cv) = (na.iter().filter(|&&b| b).count(), nv.iter().filter(|&&b| b).count());
            assert!(ca == 0 || cv == 0, "one noisy modality per sample");
            let c = ca + cv;
            if c > 0 {
                noisy += 1;
                modality.push(ca > 0);
                assert!(c < s.steps, "clean steps remain");
                let flags = if ca > 0 { na } else { nv };
                let first = flags.iter().position(|&b| b).unwrap();
                assert!(flags[first..first + c].iter().all(|&b| b), "the noisy span is contiguous");
            }
        }
        assert_eq!(noisy, (0.5 * split.len() as f32).round() as usize, "{name}");
        assert!(modality.iter().enumerate().all(|(i, &a)| a == (i % 2 == 0)), "audio and video alternate");
    }
    let none = aligned_synth::generate(&AlignedSynthConfig { noise_fraction: 0.0, ..cfg.clone() });
    assert!(none.train.samples.iter().all(|s| s.noisy.as_ref().unwrap().0.iter().chain(&s.noisy.as_ref().unwrap().1).all(|b| !b)));
}

/// Mean over (clean, or all) steps of column 0.
fn mean0(x: &[f32], dim: usize, flags: &[bool], clean_only: bool) -> f32 {
    let rows: Vec<f32> = x.chunks(dim).zip(flags).filter(|(_, f)| !clean_only || !**f).map(|(r, _)| r[0]).collect();
    rows.iter().sum::<f32>() / rows.len() as f32
}

#[test]
fn synthetic_noise_hurts_a_plain_mean() {
    let ds = aligned_synth::generate(&AlignedSynthConfig::default());
    let (mut clean_err, mut all_err, mut text_only, mut n) = (0.0, 0.0, 0.0, 0);
    for s in &ds.test.samples {
        let (na, nv) = s.noisy.as_ref().unwrap();
        if !na.iter().chain(nv).any(|&b| b) {
            continue;
        }
        let pos = s.words.iter().filter(|w| POSITIVE_WORDS.contains(&w.as_str())).count() as f32;
        let neg = s.words.iter().filter(|w| NEGATIVE_WORDS.contains(&w.as_str())).count() as f32;
        let t = if pos > neg {
            1.0
        } else if neg > pos {
            -1.0
        } else {
            0.0
        }; // f32::signum(0.0) is 1
        let predict = |clean: bool| (t + mean0(&s.audio, 5, na, clean) + mean0(&s.video, 7, nv, clean)).clamp(-3.0, 3.0);
        clean_err += (predict(true) - s.label).abs();
        all_err += (predict(false) - s.label).abs();
        text_only += (t - s.label).abs();
        n += 1;
    }
    let (clean, all, text) = (clean_err / n as f32, all_err / n as f32, text_only / n as f32);
    eprintln!("noisy test samples: {n}; MAE clean-step means {clean:.3}, all-step means {all:.3}, text only {text:.3}");
    assert!(n > 300);
    assert!(clean < 0.3, "clean-step means predict well: {clean}");
    assert!(all > clean + 0.8, "the noisy steps must hurt a plain mean: {all} vs {clean}");
    assert!(text > clean + 0.3, "text alone is not enough: {text}");
}
