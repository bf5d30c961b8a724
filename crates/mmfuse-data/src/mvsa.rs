//! MVSA-Single and MVSA-Multiple (Niu et al. 2016, multi-view sentiment analysis): a folder of
//! posts `data/<id>.txt` + `data/<id>.jpg` and a label file `labelResultAll.txt` with a header
//! line, then one line per post:
//!
//! ```text
//! ID<TAB>text,image                                   (MVSA-Single: one annotator)
//! ID<TAB>text,image<TAB>text,image<TAB>text,image     (MVSA-Multiple: three annotators)
//! ```
//!
//! with labels `positive`, `neutral`, `negative`.
//!
//! **Cleaning** (Xu & Mao 2017, "MultiSentiNet", followed by MuSE and most later work):
//! - Multiple: each modality's label is first the majority over the three annotators (a label
//!   given by at least two); a post with no majority in a modality is dropped (`no_majority`).
//! - Then the (text, image) pair gives the post's label: equal labels → that label; one
//!   `neutral` and one polar → the polar label; `positive` against `negative` → dropped
//!   (`conflicting`).
//!
//! Post texts are read as UTF-8, falling back to Latin-1 for files that are not valid UTF-8
//! (some MVSA files are), counted in [`MvsaReport::latin1_texts`]. Posts whose text file is
//! missing or empty are dropped and counted; a malformed label line is an error naming the
//! file and line. [`split`] makes the customary seeded 8:1:1 train/dev/test split.

use crate::cls::ClsSample;
use crate::error::{DataError, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// The three sentiment labels.
pub const MVSA_LABELS: [&str; 3] = ["negative", "neutral", "positive"];

/// What reading and cleaning dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MvsaReport {
    /// Label lines read.
    pub posts: usize,
    /// Posts kept.
    pub kept: usize,
    /// Dropped: text and image labels are `positive` against `negative`.
    pub conflicting: usize,
    /// Dropped (Multiple): no label given by two annotators in some modality.
    pub no_majority: usize,
    /// Dropped: `data/<id>.txt` missing or empty.
    pub missing_text: usize,
    /// Texts decoded as Latin-1 because they were not valid UTF-8.
    pub latin1_texts: usize,
}

/// The label of a (text, image) label pair under the cleaning rule; `None`: conflicting.
pub fn pair_label<'a>(text: &'a str, image: &'a str) -> Option<&'a str> {
    match (text, image) {
        (t, i) if t == i => Some(t),
        ("neutral", other) | (other, "neutral") => Some(other),
        _ => None,
    }
}

/// The label at least two of `labels` agree on.
pub fn majority<'a>(labels: &[&'a str]) -> Option<&'a str> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for l in labels {
        *counts.entry(l).or_default() += 1;
    }
    counts.into_iter().find(|(_, n)| *n * 2 > labels.len()).map(|(l, _)| l)
}

/// Read an MVSA folder (`labelResultAll.txt` and `data/`) into classification samples whose
/// images are `data/<id>.jpg` (relative to `dir`), cleaned as described in the module docs.
pub fn read_mvsa(dir: &Path) -> Result<(Vec<ClsSample>, MvsaReport)> {
    let label_path = dir.join("labelResultAll.txt");
    let raw = std::fs::read(&label_path).map_err(|e| DataError::io(&label_path, e))?;
    let text = String::from_utf8_lossy(&raw);
    let mut rep = MvsaReport::default();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = line.trim_end_matches('\r');
        if lineno == 1 && line.to_ascii_lowercase().starts_with("id") || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        if fields.len() != 2 && fields.len() != 4 {
            return Err(DataError::format(
                &label_path,
                lineno,
                format!("expected ID and 1 (MVSA-Single) or 3 (MVSA-Multiple) 'text,image' label pairs separated by tabs, found {} fields", fields.len()),
            ));
        }
        let id = fields[0];
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(DataError::format(&label_path, lineno, format!("invalid post id '{id}'")));
        }
        let mut texts = Vec::new();
        let mut images = Vec::new();
        for pair in &fields[1..] {
            let Some((t, im)) = pair.split_once(',') else {
                return Err(DataError::format(&label_path, lineno, format!("label pair '{pair}' is not 'text,image'")));
            };
            for l in [t, im] {
                if !MVSA_LABELS.contains(&l) {
                    return Err(DataError::format(&label_path, lineno, format!("unknown label '{l}' (expected positive, neutral or negative)")));
                }
            }
            texts.push(t);
            images.push(im);
        }
        rep.posts += 1;
        let (t, im) = if texts.len() == 1 {
            (texts[0], images[0])
        } else {
            match (majority(&texts), majority(&images)) {
                (Some(t), Some(im)) => (t, im),
                _ => {
                    rep.no_majority += 1;
                    continue;
                }
            }
        };
        let Some(label) = pair_label(t, im) else {
            rep.conflicting += 1;
            continue;
        };
        let text_path = dir.join("data").join(format!("{id}.txt"));
        let post = match std::fs::read(&text_path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(e) => {
                    rep.latin1_texts += 1;
                    e.into_bytes().iter().map(|&b| b as char).collect()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(DataError::io(&text_path, e)),
        };
        let post = post.split_whitespace().collect::<Vec<_>>().join(" ");
        if post.is_empty() {
            rep.missing_text += 1;
            continue;
        }
        out.push(ClsSample { id: id.to_string(), text: post, image: Some(format!("data/{id}.jpg")), label: label.to_string(), ocr: None, line: lineno });
    }
    rep.kept = out.len();
    Ok((out, rep))
}

/// Seeded shuffle, then train/dev/test in the ratio 8:1:1 (dev and test get ⌊n/10⌋ each).
pub fn split(mut samples: Vec<ClsSample>, seed: u64) -> [Vec<ClsSample>; 3] {
    samples.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let n = samples.len();
    let tenth = n / 10;
    let test = samples.split_off(n - tenth);
    let dev = samples.split_off(n - 2 * tenth);
    [samples, dev, test]
}

/// `mmfuse prepare-mvsa`: read an MVSA folder, clean it ([`read_mvsa`]), make the image paths
/// absolute, split 8:1:1 with `seed` ([`split`]) and write `train.jsonl`, `dev.jsonl`,
/// `test.jsonl` and `report.json` to `out`. Returns the report and the split sizes.
pub fn prepare_mvsa(dir: &Path, out: &Path, seed: u64) -> Result<(MvsaReport, [usize; 3])> {
    let (samples, report) = read_mvsa(dir)?;
    let abs = std::fs::canonicalize(dir).map_err(|e| DataError::io(dir, e))?;
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let samples: Vec<ClsSample> = samples
        .into_iter()
        .map(|mut s| {
            s.image = s.image.map(|p| abs.join(p).to_string_lossy().into_owned());
            s
        })
        .collect();
    let splits = split(samples, seed);
    for (name, part) in ["train.jsonl", "dev.jsonl", "test.jsonl"].iter().zip(&splits) {
        crate::cls::write_jsonl(&out.join(name), part)?;
    }
    let json = serde_json::to_string_pretty(&report).map_err(|e| DataError::Other(e.to_string()))?;
    crate::fsutil::write_atomic(&out.join("report.json"), json.as_bytes())?;
    Ok((report, [splits[0].len(), splits[1].len(), splits[2].len()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_rule_by_hand() {
        assert_eq!(pair_label("positive", "positive"), Some("positive"));
        assert_eq!(pair_label("neutral", "negative"), Some("negative"));
        assert_eq!(pair_label("positive", "neutral"), Some("positive"));
        assert_eq!(pair_label("neutral", "neutral"), Some("neutral"));
        assert_eq!(pair_label("positive", "negative"), None);
        assert_eq!(pair_label("negative", "positive"), None);
        assert_eq!(majority(&["positive", "neutral", "positive"]), Some("positive"));
        assert_eq!(majority(&["positive", "neutral", "negative"]), None);
        assert_eq!(majority(&["neutral"]), Some("neutral"));
    }

    fn folder(labels: &str, texts: &[(&str, &[u8])]) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mmfuse-mvsa-{}-{}", std::process::id(), labels.len()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("data")).unwrap();
        std::fs::write(d.join("labelResultAll.txt"), labels).unwrap();
        for (id, t) in texts {
            std::fs::write(d.join("data").join(format!("{id}.txt")), t).unwrap();
        }
        d
    }

    #[test]
    fn reads_single_and_multiple_with_counts() {
        let d = folder(
            "ID\ttext,image\n1\tpositive,neutral\n2\tpositive,negative\n3\tneutral,neutral\n4\tnegative,negative\n",
            &[("1", b"good  day\n"), ("2", b"x"), ("3", b"caf\xe9 time"), ("4", b"  ")],
        );
        let (s, r) = read_mvsa(&d).unwrap();
        assert_eq!(s.iter().map(|x| (x.id.as_str(), x.label.as_str())).collect::<Vec<_>>(), [("1", "positive"), ("3", "neutral")]);
        assert_eq!(s[0].text, "good day");
        assert_eq!(s[1].text, "café time");
        assert_eq!(s[1].image.as_deref(), Some("data/3.jpg"));
        assert_eq!(r, MvsaReport { posts: 4, kept: 2, conflicting: 1, no_majority: 0, missing_text: 1, latin1_texts: 1 });
        let _ = std::fs::remove_dir_all(&d);

        let d = folder(
            "ID\ttext,image\ttext,image\ttext,image\n\
             7\tpositive,neutral\tpositive,positive\tneutral,positive\n\
             8\tpositive,neutral\tnegative,neutral\tneutral,neutral\n\
             9\tnegative,positive\tnegative,positive\tneutral,negative\n\
             10\tneutral,negative\tpositive,negative\tnegative,positive\n",
            &[("7", b"a"), ("8", b"b"), ("9", b"c"), ("10", b"d")],
        );
        let (s, r) = read_mvsa(&d).unwrap();
        // 7: text maj positive, image maj positive → positive; 8: no text majority; 9: negative vs
        // positive → conflicting; 10: text: no majority
        assert_eq!(s.iter().map(|x| (x.id.as_str(), x.label.as_str())).collect::<Vec<_>>(), [("7", "positive")]);
        assert_eq!((r.posts, r.kept, r.no_majority, r.conflicting), (4, 1, 2, 1));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let d = folder("ID\ttext,image\n1\tpositive,neutral\n2\tpositive;neutral\n", &[("1", b"a")]);
        let e = read_mvsa(&d).unwrap_err().to_string();
        assert!(e.contains("labelResultAll.txt:3") && e.contains("not 'text,image'"), "{e}");
        let d = folder("ID\ttext,image\n1\tpositive,happy\n", &[("1", b"a")]);
        let e = read_mvsa(&d).unwrap_err().to_string();
        assert!(e.contains(":2") && e.contains("unknown label 'happy'"), "{e}");
    }

    #[test]
    fn split_is_8_1_1_and_seeded() {
        let s: Vec<ClsSample> =
            (0..25).map(|i| ClsSample { id: i.to_string(), text: "t".into(), image: None, label: "neutral".into(), ocr: None, line: i }).collect();
        let [a, b, c] = split(s.clone(), 1);
        assert_eq!((a.len(), b.len(), c.len()), (21, 2, 2));
        let [a2, ..] = split(s, 1);
        assert_eq!(a.iter().map(|x| &x.id).collect::<Vec<_>>(), a2.iter().map(|x| &x.id).collect::<Vec<_>>());
    }
}
