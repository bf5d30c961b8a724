//! Fuzzing of every reader of untrusted bytes in this crate, with `proptest`: each case takes a
//! real or generated seed file and applies random byte edits (flips, insertions, deletions,
//! duplicated runs, a truncation). Every input must either parse or return an error — a panic
//! fails the case, and proptest shrinks it to a minimal input. `PROPTEST_CASES` raises the
//! number of cases per reader (CI: 256).
//!
//! Readers: Twitter CoNLL, classification JSONL, MMSD lines and MMSD2.0 JSON, Python pickles
//! (MAG-BERT and MMSA layouts), PNG / JPEG images (size limit from the header), lexicons,
//! `tokenizer.json`, mmfuse's aligned layout (`.jsonl` + `.safetensors`), the MVSA layout
//! (`labelResultAll.txt` + `data/<id>.txt`).

use mmfuse_data::aligned::{AlignedDataset, mag_bert_from_value, mmsa_from_value, read_dir, write_dir};
use mmfuse_data::aligned_synth::{AlignedSynthConfig, generate};
use mmfuse_testkit::proptest::prelude::*;
use mmfuse_testkit::{cases, edits, mutate};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aligned").join(name)).unwrap()
}

fn tmp() -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmfuse-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The seed files, made once: a small synthetic corpus (CoNLL, JSONL, PNG), hand-written MMSD
/// lines, the pickle fixtures, a JPEG, a lexicon, a word-level `tokenizer.json`.
struct Seeds {
    conll: Vec<u8>,
    jsonl: Vec<u8>,
    mmsd: Vec<u8>,
    mmsd2: Vec<u8>,
    pickles: Vec<Vec<u8>>,
    images: Vec<Vec<u8>>,
    lexicon: Vec<u8>,
    tokenizer: Vec<u8>,
    aligned_jsonl: Vec<u8>,
    aligned_st: Vec<u8>,
    mvsa_labels: Vec<u8>,
    mvsa_texts: Vec<Vec<u8>>,
}

fn seeds() -> &'static Seeds {
    static S: OnceLock<Seeds> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tmp().join("seeds");
        mmfuse_data::synth::generate(&dir, &mmfuse_data::synth::SynthConfig { seed: 1, n_train: 6, n_dev: 2, n_test: 2, ..Default::default() }).unwrap();
        let png = std::fs::read(std::fs::read_dir(dir.join("cls/images")).unwrap().next().unwrap().unwrap().path()).unwrap();
        let img = image::load_from_memory(&png).unwrap();
        let mut jpeg = Vec::new();
        img.write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
        let texts = ["good day".to_string(), "bad night here".to_string()];
        let tok = mmfuse_data::text::train_word_tokenizer(texts.into_iter(), 1, true).unwrap();
        let aligned = dir.join("aligned");
        let ds: AlignedDataset = generate(&AlignedSynthConfig { n_train: 3, n_dev: 1, n_test: 1, audio_dim: 2, video_dim: 2, seed: 1, ..Default::default() });
        write_dir(&ds, &aligned).unwrap();
        Seeds {
            conll: std::fs::read(dir.join("ner/train.txt")).unwrap(),
            jsonl: std::fs::read(dir.join("cls/train.jsonl")).unwrap(),
            mmsd: b"['682716753374351360', 'so happy to wait #not', 1]\n['6827', \"it's \\\"fine\\\"\", 0, 'ocr text']\n".to_vec(),
            mmsd2: br#"[{"image_id": "1", "text": "great, rain", "label": 1}, {"image_id": "2", "text": "ok", "label": 0}]"#.to_vec(),
            pickles: ["mag_p2.pkl", "mag_p4.pkl", "mag_p5.pkl", "mmsa.pkl", "dtypes.pkl"].iter().map(|f| fixture(f)).collect(),
            images: vec![png, jpeg],
            lexicon: b"good\t0.8\nbad\t-0.7\n# a comment\nfine\t0.1\n".to_vec(),
            tokenizer: tok.to_string(false).unwrap().into_bytes(),
            aligned_jsonl: std::fs::read(aligned.join("train.jsonl")).unwrap(),
            aligned_st: std::fs::read(aligned.join("train.safetensors")).unwrap(),
            // MVSA-multiple's layout: three annotators' text,image labels per post
            mvsa_labels: b"ID\ttext,image\ttext,image\ttext,image\n1\tpositive,positive\tpositive,neutral\tneutral,neutral\n2\tnegative,negative\tnegative,neutral\tpositive,negative\n3\tneutral,neutral\tneutral,neutral\tneutral,positive\n".to_vec(),
            mvsa_texts: vec![b"good  day #sun\n".to_vec(), b"caf\xe9 closed".to_vec(), b"RT @x: ok".to_vec()],
        }
    })
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn conll_and_jsonl_never_panic(e in edits()) {
        let s = seeds();
        let p = Path::new("fuzz.txt");
        let _ = mmfuse_data::conll::parse_conll(&String::from_utf8_lossy(&mutate(&s.conll, &e)), p);
        let _ = mmfuse_data::cls::parse_jsonl(&String::from_utf8_lossy(&mutate(&s.jsonl, &e)), p);
    }

    #[test]
    fn mmsd_never_panics(e in edits()) {
        let s = seeds();
        let p = Path::new("fuzz.txt");
        let _ = mmfuse_data::mmsd::parse_mmsd_txt(&String::from_utf8_lossy(&mutate(&s.mmsd, &e)), p, "/images");
        let _ = mmfuse_data::mmsd::parse_mmsd2_json(&String::from_utf8_lossy(&mutate(&s.mmsd2, &e)), p, "/images");
    }

    #[test]
    fn pickles_never_panic(k in 0usize..5, e in edits()) {
        let bytes = mutate(&seeds().pickles[k], &e);
        if let Ok(v) = mmfuse_data::pickle::parse(&bytes) {
            let p = Path::new("fuzz.pkl");
            let _ = mag_bert_from_value(p, &v);
            let _ = mmsa_from_value(p, &v);
        }
    }

    #[test]
    fn images_never_panic(k in 0usize..2, e in edits()) {
        let bytes = mutate(&seeds().images[k], &e);
        if let Ok(img) = mmfuse_data::image::decode_rgb(Cursor::new(bytes.as_slice()), Path::new("fuzz.png"), 1 << 22) {
            let spec = mmfuse_data::image::ImageSpec::default();
            let _ = mmfuse_data::image::to_tensor_data(&img, &spec);
        }
    }

    #[test]
    fn lexicon_tokenizer_and_aligned_files_never_panic(e in edits(), which in 0u8..4) {
        let s = seeds();
        let dir = tmp().join(format!("case-{}", std::thread::current().name().unwrap_or("t").replace("::", "-")));
        std::fs::create_dir_all(&dir).unwrap();
        match which {
            0 => {
                std::fs::write(dir.join("lex.tsv"), mutate(&s.lexicon, &e)).unwrap();
                let _ = mmfuse_data::lexicon::Lexicon::read(&dir.join("lex.tsv"));
            }
            1 => {
                std::fs::write(dir.join("tokenizer.json"), mutate(&s.tokenizer, &e)).unwrap();
                if let Ok(t) = mmfuse_data::text::TextTokenizer::from_file(&dir.join("tokenizer.json"), 8, true) {
                    let _ = t.encode("good bad unknown");
                }
            }
            _ => {
                // mmfuse's aligned layout: one of its two files damaged, the other intact
                let (j, st) = if which == 2 { (mutate(&s.aligned_jsonl, &e), s.aligned_st.clone()) } else { (s.aligned_jsonl.clone(), mutate(&s.aligned_st, &e)) };
                for split in ["train", "dev", "test"] {
                    std::fs::write(dir.join(format!("{split}.jsonl")), &j).unwrap();
                    std::fs::write(dir.join(format!("{split}.safetensors")), &st).unwrap();
                }
                let _ = read_dir(&dir);
            }
        }
    }

    /// The MVSA layout: the label file or one post's text damaged, the rest intact.
    #[test]
    fn mvsa_layout_never_panics(e in edits(), which in 0usize..4) {
        let s = seeds();
        let dir = tmp().join(format!("mvsa-{}", std::thread::current().name().unwrap_or("t").replace("::", "-")));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let labels = if which == 0 { mutate(&s.mvsa_labels, &e) } else { s.mvsa_labels.clone() };
        std::fs::write(dir.join("labelResultAll.txt"), labels).unwrap();
        for (k, t) in s.mvsa_texts.iter().enumerate() {
            let t = if which == k + 1 { mutate(t, &e) } else { t.clone() };
            std::fs::write(dir.join("data").join(format!("{}.txt", k + 1)), t).unwrap();
        }
        let _ = mmfuse_data::mvsa::read_mvsa(&dir);
    }
}
