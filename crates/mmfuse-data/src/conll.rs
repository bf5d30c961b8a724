//! Twitter-2015 / Twitter-2017 multimodal NER files (Zhang et al. 2018; Lu et al. 2018, as
//! released with UMT and reused by MuSE): `IMGID:<id>`, then one `token<TAB>tag` line per word,
//! then a blank line. Tags are BIO over PER, LOC, ORG and OTHER/MISC; `OTHER` is read as `MISC`.

use crate::error::{DataError, Result};
use std::fmt::Write;
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

/// What a reader saw and skipped.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ReadReport {
    /// Lines in the file.
    pub lines: usize,
    /// Samples read (the length of the returned vector).
    pub samples: usize,
    /// Samples skipped because they had no tokens (CoNLL) or an empty text (JSONL).
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
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
        let raw_tag = tag.trim();
        let tag = normalise_tag(raw_tag);
        if !NER_TAGS.contains(&tag.as_str()) {
            return Err(DataError::format(path, line_no, format!("unknown tag '{raw_tag}'; known tags: {} (OTHER is read as MISC)", NER_TAGS.join(", "))));
        }
        sample.words.push(word.to_string());
        sample.tags.push(tag);
    }
    flush(&mut cur, &mut out, &mut report);
    report.samples = out.len();
    Ok((out, report))
}

/// Write samples in the same format (`IMGID:<id>`, `token<TAB>tag` lines, a blank line after
/// each sample). Samples that could not be read back (different numbers of words and tags, a
/// word or tag containing a tab or line break, an empty word) are refused.
pub fn write_conll(path: &Path, samples: &[NerSample]) -> Result<()> {
    let mut buf = String::new();
    let bad = |s: &NerSample, what: String| DataError::Other(format!("cannot write sample {} to {}: {what}", s.id, path.display()));
    let clean = |x: &str| !x.is_empty() && !x.contains(['\t', '\n', '\r']);
    for s in samples {
        if s.words.len() != s.tags.len() {
            return Err(bad(s, format!("{} words but {} tags", s.words.len(), s.tags.len())));
        }
        if !clean(&s.id) || s.id.trim() != s.id {
            return Err(bad(s, format!("bad id {:?}", s.id)));
        }
        if let Some(x) = s.words.iter().chain(&s.tags).find(|x| !clean(x)) {
            return Err(bad(s, format!("bad word or tag {x:?}")));
        }
        // Writing to a String cannot fail.
        let _ = writeln!(buf, "IMGID:{}", s.id);
        for (w, t) in s.words.iter().zip(&s.tags) {
            let _ = writeln!(buf, "{w}\t{t}");
        }
        buf.push('\n');
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
    fn tolerant_of_crlf_bom_trailing_blanks_and_a_missing_final_blank_line() {
        let text = "\u{feff}IMGID:7\r\nA\tB-ORG\r\nb\tO\r\n\r\n\r\n\nIMGID:8\r\nc\tI-OTHER";
        let (s, r) = parse_conll(text, &p()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].id.as_str(), s[0].line), ("7", 1));
        assert_eq!(s[0].words, ["A", "b"]);
        assert_eq!(s[0].tags, ["B-ORG", "O"]);
        assert_eq!((s[1].id.as_str(), s[1].line), ("8", 7));
        assert_eq!(s[1].tags, ["I-MISC"]);
        assert_eq!(r, ReadReport { lines: 8, samples: 2, skipped_empty: 0 });
    }

    #[test]
    fn every_error_names_file_and_line() {
        let cases = [
            ("IMGID:1\nfoo O\n", "data/train.txt:2: expected 'token<TAB>tag', found \"foo O\""),
            ("IMGID:1\na\tO\nb\tO\tx\n", "data/train.txt:3: expected 'token<TAB>tag', found \"b\\tO\\tx\""),
            ("IMGID:1\nfoo\n", "data/train.txt:2: expected 'token<TAB>tag', found \"foo\""),
            ("IMGID:1\n\tO\n", "data/train.txt:2: empty token"),
            ("IMGID: \na\tO\n", "data/train.txt:1: empty IMGID"),
            ("\n\nfoo\tO\n", "data/train.txt:3: expected 'IMGID:<id>' before the first token, found \"foo\\tO\""),
            (
                "IMGID:1\na\tO\n\nIMGID:2\nfoo\tB-FOO\n",
                "data/train.txt:5: unknown tag 'B-FOO'; known tags: O, B-PER, I-PER, B-LOC, I-LOC, B-ORG, I-ORG, B-MISC, I-MISC (OTHER is read as MISC)",
            ),
            (
                "IMGID:1\na\tper\n",
                "data/train.txt:2: unknown tag 'per'; known tags: O, B-PER, I-PER, B-LOC, I-LOC, B-ORG, I-ORG, B-MISC, I-MISC (OTHER is read as MISC)",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_conll(text, &p()).unwrap_err().to_string(), expected, "input {text:?}");
        }
        let e = read_conll(Path::new("/nonexistent/train.txt"), &ConllOptions::default()).unwrap_err().to_string();
        assert!(e.starts_with("cannot read /nonexistent/train.txt: "), "{e}");
    }

    #[test]
    fn writer_refuses_what_the_reader_could_not_read_back() {
        let path = std::env::temp_dir().join(format!("mmfuse-conll-bad-{}.txt", std::process::id()));
        let s = NerSample { id: "1".into(), words: vec!["a\tb".into()], tags: vec!["O".into()], line: 0 };
        assert!(write_conll(&path, &[s]).is_err());
        let s = NerSample { id: "1".into(), words: vec!["a".into()], tags: vec![], line: 0 };
        assert!(write_conll(&path, &[s]).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn reads_the_real_twitter_corpora() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
        for (corpus, n) in [("twitter2015", [4000, 1000, 3257]), ("twitter2017", [3373, 723, 723])] {
            for (split, expected) in ["train.txt", "valid.txt", "test.txt"].iter().zip(n) {
                let path = root.join(corpus).join(split);
                if !path.exists() {
                    eprintln!("note: {} is absent; skipping this check", path.display());
                    continue;
                }
                let (s, r) = read_conll(&path, &ConllOptions::default()).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(s.len(), expected, "{}", path.display());
                assert_eq!(r.samples, expected);
                assert!(s.iter().all(|x| !x.words.is_empty() && x.words.len() == x.tags.len()));
                if (corpus, *split) == ("twitter2015", "train.txt") {
                    assert_eq!(s[0].id, "1015799");
                    assert_eq!(s[0].line, 1);
                    assert_eq!(s[0].words[..3], ["RT", "@JayKenMinaj", "_"]);
                    assert_eq!(s[0].tags[8..10], ["B-PER", "I-PER"]);
                    assert_eq!(s[1].id, "1109405");
                    assert_eq!(s[1].line, 25);
                    assert!(s.iter().any(|x| x.tags.iter().any(|t| t.ends_with("-MISC"))), "OTHER is read as MISC");
                }
            }
        }
    }
}
