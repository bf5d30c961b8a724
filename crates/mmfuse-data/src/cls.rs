//! Classification data (sentiment, sarcasm) as JSONL: one object per line
//! `{"id": "17", "text": "...", "image": "images/17.png", "label": "sarcastic"}`.

use crate::conll::ReadReport;
use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClsSample {
    pub id: String,
    pub text: String,
    /// Image path, relative to the data folder or absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub label: String,
    /// 1-based line in the source file.
    #[serde(skip)]
    pub line: usize,
}

/// Read a JSONL file; malformed lines are errors naming `file:line`, empty texts are skipped
/// and counted.
pub fn read_jsonl(path: &Path) -> Result<(Vec<ClsSample>, ReadReport)> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let mut out = Vec::new();
    let mut report = ReadReport::default();
    for (i, line) in text.lines().enumerate() {
        report.lines = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut s: ClsSample = serde_json::from_str(line).map_err(|e| DataError::format(path, i + 1, format!("malformed JSON line: {e}")))?;
        s.line = i + 1;
        if s.text.trim().is_empty() {
            report.skipped_empty += 1;
            continue;
        }
        out.push(s);
    }
    Ok((out, report))
}

/// Write samples as JSONL.
pub fn write_jsonl(path: &Path, samples: &[ClsSample]) -> Result<()> {
    let mut buf = String::new();
    for s in samples {
        buf.push_str(&serde_json::to_string(s).map_err(|e| DataError::Other(e.to_string()))?);
        buf.push('\n');
    }
    std::fs::write(path, buf).map_err(|e| DataError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counts_and_reports_bad_lines() {
        let dir = std::env::temp_dir().join(format!("mmfuse-cls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("train.jsonl");
        std::fs::write(&f, "{\"id\":\"1\",\"text\":\"good\",\"image\":\"images/1.png\",\"label\":\"positive\"}\n\n{\"id\":\"2\",\"text\":\"  \",\"label\":\"negative\"}\n").unwrap();
        let (s, r) = read_jsonl(&f).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].image.as_deref(), Some("images/1.png"));
        assert_eq!(r.skipped_empty, 1);
        std::fs::write(&f, "{\"id\":\"1\",\"text\":\"good\",\"label\":\"positive\"}\n{\"id\":\"2\",\"text\":\"x\"}\n").unwrap();
        let e = read_jsonl(&f).unwrap_err().to_string();
        assert!(e.contains("train.jsonl:2: malformed JSON line: missing field `label`"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
