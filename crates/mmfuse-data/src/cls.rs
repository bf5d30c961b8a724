//! Classification data (sentiment, sarcasm) as JSONL: one object per line
//! `{"id": "17", "text": "...", "image": "images/17.png", "label": "sarcastic"}`.

use crate::conll::ReadReport;
use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClsSample {
    /// Sample id; a JSON number is accepted and kept as its decimal text.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub text: String,
    /// Image path, relative to the data folder or absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub label: String,
    /// OCR text of the image (MMSD), read by CLFA's optional OCR stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr: Option<String>,
    /// 1-based line in the source file.
    #[serde(skip)]
    pub line: usize,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(serde_json::Number),
    }
    match Id::deserialize(d) {
        Ok(Id::S(s)) => Ok(s),
        Ok(Id::N(n)) => Ok(n.to_string()),
        Err(_) => Err(serde::de::Error::custom("field `id` must be a string or a number")),
    }
}

/// Read a JSONL file: one object per line with `id`, `text`, `label` and optionally `image`
/// (unknown fields are ignored). Blank lines are ignored; malformed JSON, a missing field or an
/// empty `id`/`label` is an error naming `file:line`; samples whose text is empty or only
/// whitespace are skipped and counted in [`ReadReport::skipped_empty`].
pub fn read_jsonl(path: &Path) -> Result<(Vec<ClsSample>, ReadReport)> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    parse_jsonl(&text, path)
}

/// Parse JSONL text (`path` only names the source in errors).
pub fn parse_jsonl(text: &str, path: &Path) -> Result<(Vec<ClsSample>, ReadReport)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut report = ReadReport::default();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        report.lines = line_no;
        if line.trim().is_empty() {
            continue;
        }
        if !line.trim_start().starts_with('{') {
            return Err(DataError::format(path, line_no, format!("expected a JSON object, found {:?}", truncate(line.trim(), 60))));
        }
        let mut s: ClsSample = serde_json::from_str(line).map_err(|e| DataError::format(path, line_no, format!("malformed JSON line: {e}")))?;
        s.line = line_no;
        if s.id.trim().is_empty() {
            return Err(DataError::format(path, line_no, "empty `id`"));
        }
        if s.label.trim().is_empty() {
            return Err(DataError::format(path, line_no, "empty `label`"));
        }
        if s.text.trim().is_empty() {
            report.skipped_empty += 1;
            continue;
        }
        out.push(s);
    }
    report.samples = out.len();
    Ok((out, report))
}

fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Write samples as JSONL (fields `id`, `text`, `image` when present, `label`; `line` is not
/// written), atomically.
pub fn write_jsonl(path: &Path, samples: &[ClsSample]) -> Result<()> {
    let mut buf = String::new();
    for s in samples {
        buf.push_str(&serde_json::to_string(s).map_err(|e| DataError::Other(e.to_string()))?);
        buf.push('\n');
    }
    crate::fsutil::write_atomic(path, buf.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("data/train.jsonl")
    }

    #[test]
    fn reads_counts_and_skips_empty_texts() {
        let text = "\u{feff}{\"id\":\"1\",\"text\":\"good\",\"image\":\"images/1.png\",\"label\":\"positive\"}\n\n  \n{\"id\":\"2\",\"text\":\"  \",\"label\":\"negative\"}\r\n{\"id\":3,\"text\":\"x\",\"label\":\"sarcastic\",\"extra\":1}";
        let (s, r) = parse_jsonl(text, p()).unwrap();
        assert_eq!(r, ReadReport { lines: 5, samples: 2, skipped_empty: 1 });
        assert_eq!(s[0], ClsSample { id: "1".into(), text: "good".into(), image: Some("images/1.png".into()), label: "positive".into(), ocr: None, line: 1 });
        assert_eq!(s[1], ClsSample { id: "3".into(), text: "x".into(), image: None, label: "sarcastic".into(), ocr: None, line: 5 });
    }

    #[test]
    fn errors_name_file_and_line() {
        let ok = "{\"id\":\"1\",\"text\":\"good\",\"label\":\"positive\"}\n";
        let cases = [
            (format!("{ok}{{\"id\":\"2\",\"text\":\"x\"}}\n"), "data/train.jsonl:2: malformed JSON line: missing field `label`"),
            (format!("{ok}\n{{\"id\":\"2\",\"text\":\"x\",\n"), "data/train.jsonl:3: malformed JSON line: EOF while parsing a value at line 1 column 21"),
            (format!("{ok}[1, 2]\n"), "data/train.jsonl:2: expected a JSON object, found \"[1, 2]\""),
            (format!("{ok}{{\"id\":\"2\",\"text\":\"x\",\"label\":\"\"}}\n"), "data/train.jsonl:2: empty `label`"),
            ("{\"id\":[1],\"text\":\"x\",\"label\":\"a\"}\n".to_string(), "data/train.jsonl:1: malformed JSON line: field `id` must be a string or a number"),
            (
                "{\"id\":\"1\",\"text\":7,\"label\":\"a\"}\n".to_string(),
                "data/train.jsonl:1: malformed JSON line: invalid type: integer `7`, expected a string",
            ),
        ];
        for (text, expected) in cases {
            let e = parse_jsonl(&text, p()).unwrap_err().to_string();
            assert!(e.starts_with(expected), "input {text:?}: got {e:?}, expected {expected:?}");
        }
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = std::env::temp_dir().join(format!("mmfuse-cls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("train.jsonl");
        let s = vec![
            ClsSample {
                id: "1".into(),
                text: "a \"quoted\" text\nwith a newline".into(),
                image: Some("images/1.png".into()),
                label: "positive".into(),
                ocr: None,
                line: 1,
            },
            ClsSample { id: "2".into(), text: "b".into(), image: None, label: "negative".into(), ocr: None, line: 2 },
        ];
        write_jsonl(&f, &s).unwrap();
        let (r, _) = read_jsonl(&f).unwrap();
        assert_eq!(r, s);
        let e = read_jsonl(&dir.join("absent.jsonl")).unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot read {}", dir.join("absent.jsonl").display())), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
