//! Twitter-2015 / Twitter-2017 multimodal NER files (Zhang et al. 2018; Lu et al. 2018, as
//! released with UMT and reused by MuSE): `IMGID:<id>`, then one `token<TAB>tag` line per word,
//! then a blank line. Tags are BIO over PER, LOC, ORG and OTHER/MISC; `OTHER` is read as `MISC`.

use crate::error::{DataError, Result};
use std::io::Write;
use std::path::Path;

/// The BIO tag set, in model output order.
pub const NER_TAGS: [&str; 9] = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"];

/// One post: its image id, words and word-level tags.
#[derive(Clone, Debug, PartialEq)]
pub struct NerSample {
    pub id: String,
    pub words: Vec<String>,
    pub tags: Vec<String>,
    /// Line of the `IMGID:` header (1-based).
    pub line: usize,
}

/// Reader options.
#[derive(Clone, Debug, Default)]
pub struct ConllOptions {}

/// What reading skipped.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ReadReport {
    pub lines: usize,
    pub skipped_empty: usize,
}

fn normalise_tag(tag: &str) -> String {
    match tag.strip_suffix("-OTHER") {
        Some(prefix) => format!("{prefix}-MISC"),
        None => tag.to_string(),
    }
}

/// Read a CoNLL file. Errors name `file:line`; posts with no words are skipped and counted.
pub fn read_conll(path: &Path, _opts: &ConllOptions) -> Result<(Vec<NerSample>, ReadReport)> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    parse_conll(&text, path)
}

/// Parse CoNLL text (`path` only names the source in errors).
pub fn parse_conll(text: &str, path: &Path) -> Result<(Vec<NerSample>, ReadReport)> {
    let mut out = Vec::new();
    let mut report = ReadReport::default();
    let mut cur: Option<NerSample> = None;
    let flush = |cur: &mut Option<NerSample>, out: &mut Vec<NerSample>, report: &mut ReadReport| {
        if let Some(s) = cur.take() {
            if s.words.is_empty() {
                report.skipped_empty += 1;
            } else {
                out.push(s);
            }
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        report.lines = line_no;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            flush(&mut cur, &mut out, &mut report);
            continue;
        }
        if let Some(id) = line.strip_prefix("IMGID:") {
            flush(&mut cur, &mut out, &mut report);
            let id = id.trim();
            if id.is_empty() {
                return Err(DataError::format(path, line_no, "empty IMGID"));
            }
            cur = Some(NerSample { id: id.to_string(), words: vec![], tags: vec![], line: line_no });
            continue;
        }
        let Some(sample) = cur.as_mut() else {
            return Err(DataError::format(path, line_no, format!("expected 'IMGID:<id>' before the first token, found {line:?}")));
        };
        let mut parts = line.split('\t');
        let (Some(word), Some(tag), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(DataError::format(path, line_no, format!("expected 'token<TAB>tag', found {line:?}")));
        };
        if word.is_empty() {
            return Err(DataError::format(path, line_no, "empty token"));
        }
        let tag = normalise_tag(tag.trim());
        if !NER_TAGS.contains(&tag.as_str()) {
            return Err(DataError::format(path, line_no, format!("unknown tag '{tag}'; known tags: {} (OTHER is read as MISC)", NER_TAGS.join(", "))));
        }
        sample.words.push(word.to_string());
        sample.tags.push(tag);
    }
    flush(&mut cur, &mut out, &mut report);
    Ok((out, report))
}

/// Write samples in the same format.
pub fn write_conll(path: &Path, samples: &[NerSample]) -> Result<()> {
    let mut buf = Vec::new();
    for s in samples {
        writeln!(buf, "IMGID:{}", s.id).expect("write to Vec");
        for (w, t) in s.words.iter().zip(&s.tags) {
            writeln!(buf, "{w}\t{t}").expect("write to Vec");
        }
        writeln!(buf).expect("write to Vec");
    }
    std::fs::write(path, buf).map_err(|e| DataError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn p() -> PathBuf {
        PathBuf::from("data/train.txt")
    }

    #[test]
    fn parses_posts_and_maps_other_to_misc() {
        let text = "IMGID:1\nRT\tO\nGeorge\tB-PER\nZimmerman\tI-PER\r\n\nIMGID:2\nNBA\tB-OTHER\n\nIMGID:3\n\n";
        let (s, r) = parse_conll(text, &p()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].words, ["RT", "George", "Zimmerman"]);
        assert_eq!(s[0].tags, ["O", "B-PER", "I-PER"]);
        assert_eq!(s[1].tags, ["B-MISC"]);
        assert_eq!(s[1].line, 6);
        assert_eq!(r.skipped_empty, 1);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse_conll("IMGID:1\nfoo O\n", &p()).unwrap_err().to_string();
        assert_eq!(e, "data/train.txt:2: expected 'token<TAB>tag', found \"foo O\"");
        let e = parse_conll("IMGID:1\nfoo\tB-FOO\n", &p()).unwrap_err().to_string();
        assert!(e.starts_with("data/train.txt:2: unknown tag 'B-FOO'; known tags: O, B-PER"), "{e}");
        let e = parse_conll("foo\tO\n", &p()).unwrap_err().to_string();
        assert!(e.starts_with("data/train.txt:1: expected 'IMGID"), "{e}");
        let e = parse_conll("IMGID:1\na\tO\tx\n", &p()).unwrap_err().to_string();
        assert!(e.starts_with("data/train.txt:2:"), "{e}");
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = std::env::temp_dir().join(format!("mmfuse-conll-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = vec![NerSample { id: "9".into(), words: vec!["a".into(), "B".into()], tags: vec!["O".into(), "B-LOC".into()], line: 1 }];
        write_conll(&dir.join("x.txt"), &s).unwrap();
        let (r, _) = read_conll(&dir.join("x.txt"), &ConllOptions::default()).unwrap();
        assert_eq!(r, s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_the_real_twitter_corpora() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
        for (corpus, n) in [("twitter2015", [4000, 1000, 3257]), ("twitter2017", [3373, 723, 723])] {
            for (split, expected) in ["train.txt", "valid.txt", "test.txt"].iter().zip(n) {
                let path = root.join(corpus).join(split);
                let (s, _) = read_conll(&path, &ConllOptions::default()).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(s.len(), expected, "{}", path.display());
            }
        }
    }
}
