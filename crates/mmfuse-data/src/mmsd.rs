//! Multimodal sarcasm detection data: MMSD (Cai et al. 2019, Twitter) and MMSD2.0 (Qin et al.
//! 2023, the de-biased re-annotation).
//!
//! **MMSD** text files (`train.txt`, `valid.txt`, `test.txt`, …) hold one Python literal list per
//! line, as written by Python's `repr`:
//!
//! ```text
//! ['682716753374351360', 'text of the tweet', 1]
//! ['682716753374351360', 'text of the tweet', 'ocr text of the image', 1]
//! ```
//!
//! The literal is parsed by hand ([`parse_py_list`]; nothing is ever evaluated): a list of
//! single- or double-quoted strings (optional `u` prefix; escapes `\\ \' \" \n \r \t \a \b \f
//! \v`, octal `\ooo`, `\xNN`, `\uNNNN`, `\UNNNNNNNN`, backslash-newline; an unknown escape keeps
//! its backslash, as in Python) and integers. Fields: id (string or integer), text, then
//! optionally a third field, then the label (last, `1` = sarcastic, `0` = not). A third field that
//! is a string is the image's OCR text ([`MmsdRecord::ocr`]); one that is an integer is ignored.
//! The OCR text is kept as the sample's `ocr` (read by CLFA's optional OCR stream).
//!
//! **MMSD2.0** is a JSON array of objects `{"image_id": "…", "text": "…", "label": 0|1}`
//! (`image_id` may be a number; unknown fields are ignored).
//!
//! Both give [`ClsSample`]s with labels [`SARCASTIC`] / [`NOT_SARCASTIC`] and image
//! `<image_dir>/<id>.jpg`. Samples whose text is empty or only whitespace are skipped and
//! counted; any malformed line or element is a [`DataError::Format`] naming the file and 1-based
//! line.

use crate::cls::ClsSample;
use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Label of sarcastic posts (`1`).
pub const SARCASTIC: &str = "sarcastic";
/// Label of non-sarcastic posts (`0`).
pub const NOT_SARCASTIC: &str = "not_sarcastic";
/// The two labels, in label-index order (0, 1).
pub const MMSD_LABELS: [&str; 2] = [NOT_SARCASTIC, SARCASTIC];

/// Counts of one read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MmsdReport {
    /// Lines in the file (text format) or elements of the array (JSON).
    pub lines: usize,
    /// Samples returned.
    pub samples: usize,
    /// Samples skipped because their text was empty.
    pub skipped_empty: usize,
    /// Samples with label 1.
    pub sarcastic: usize,
    /// Samples with label 0.
    pub not_sarcastic: usize,
    /// Records that carried OCR text (text format; the OCR is not part of [`ClsSample`]).
    pub with_ocr: usize,
}

/// One value of a Python literal list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PyValue {
    Str(String),
    Int(i64),
}

/// One MMSD record, with the OCR text [`ClsSample`] has no room for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MmsdRecord {
    pub id: String,
    pub text: String,
    pub ocr: Option<String>,
    /// 1 = sarcastic, 0 = not.
    pub label: u8,
}

/// Parse one Python literal list of strings and integers, e.g. `['1', 'a\'b', 0]`. Surrounding
/// whitespace and a trailing comma inside the brackets are accepted. Errors say what was expected
/// and where (1-based character column).
pub fn parse_py_list(line: &str) -> std::result::Result<Vec<PyValue>, String> {
    let mut p = Parser { chars: line.chars().collect(), pos: 0 };
    p.skip_ws();
    p.expect('[')?;
    let mut out = Vec::new();
    loop {
        p.skip_ws();
        if p.peek() == Some(']') {
            p.pos += 1;
            break;
        }
        out.push(p.value()?);
        p.skip_ws();
        match p.next() {
            Some(',') => continue,
            Some(']') => break,
            Some(c) => return Err(format!("expected `,` or `]` at column {}, found {c:?}", p.pos)),
            None => return Err("unterminated list: expected `,` or `]` at end of line".into()),
        }
    }
    p.skip_ws();
    if let Some(c) = p.peek() {
        return Err(format!("unexpected {c:?} after the list at column {}", p.pos + 1));
    }
    Ok(out)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, want: char) -> std::result::Result<(), String> {
        match self.next() {
            Some(c) if c == want => Ok(()),
            Some(c) => Err(format!("expected `{want}` at column {}, found {c:?}", self.pos)),
            None => Err(format!("expected `{want}`, found the end of the line")),
        }
    }

    fn value(&mut self) -> std::result::Result<PyValue, String> {
        match self.peek() {
            Some('\'' | '"') => self.string().map(PyValue::Str),
            Some('u' | 'U') if matches!(self.chars.get(self.pos + 1), Some('\'' | '"')) => {
                self.pos += 1;
                self.string().map(PyValue::Str)
            }
            Some(c) if c == '-' || c == '+' || c.is_ascii_digit() => self.int().map(PyValue::Int),
            Some(c) => Err(format!("expected a string or an integer at column {}, found {c:?}", self.pos + 1)),
            None => Err("expected a value, found the end of the line".into()),
        }
    }

    fn int(&mut self) -> std::result::Result<i64, String> {
        let start = self.pos;
        if matches!(self.peek(), Some('-' | '+')) {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '_') {
            self.pos += 1;
        }
        let s: String = self.chars[start..self.pos].iter().filter(|&&c| c != '_').collect();
        s.parse::<i64>().map_err(|e| format!("bad integer {s:?} at column {}: {e}", start + 1))
    }

    fn hex(&mut self, n: usize, what: &str) -> std::result::Result<u32, String> {
        let start = self.pos;
        let mut v = 0u32;
        for _ in 0..n {
            match self.next().and_then(|c| c.to_digit(16)) {
                Some(d) => v = v * 16 + d,
                None => return Err(format!("truncated \\{what} escape at column {start}: expected {n} hex digits")),
            }
        }
        Ok(v)
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let open_col = self.pos + 1;
        let quote = self.next().expect("caller checked the quote");
        let mut s = String::new();
        loop {
            let c = self.next().ok_or_else(|| format!("unterminated string opened at column {open_col}"))?;
            if c == quote {
                return Ok(s);
            }
            if c != '\\' {
                s.push(c);
                continue;
            }
            let col = self.pos;
            let e = self.next().ok_or_else(|| format!("unterminated string opened at column {open_col} (ends in a backslash)"))?;
            match e {
                '\\' | '\'' | '"' => s.push(e),
                'n' => s.push('\n'),
                'r' => s.push('\r'),
                't' => s.push('\t'),
                'a' => s.push('\u{7}'),
                'b' => s.push('\u{8}'),
                'f' => s.push('\u{c}'),
                'v' => s.push('\u{b}'),
                '\n' => {}
                '0'..='7' => {
                    let mut v = e.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match self.peek().and_then(|c| c.to_digit(8)) {
                            Some(d) => {
                                v = v * 8 + d;
                                self.pos += 1;
                            }
                            None => break,
                        }
                    }
                    s.push(char::from_u32(v).ok_or_else(|| format!("bad octal escape at column {col}"))?);
                }
                'x' => {
                    let v = self.hex(2, "x")?;
                    s.push(char::from_u32(v).ok_or_else(|| format!("bad \\x escape at column {col}"))?);
                }
                'u' => {
                    let v = self.hex(4, "u")?;
                    let ch = if (0xD800..0xDC00).contains(&v) {
                        // a UTF-16 surrogate pair written as two \u escapes
                        let low = if self.peek() == Some('\\') && self.chars.get(self.pos + 1) == Some(&'u') {
                            self.pos += 2;
                            self.hex(4, "u")?
                        } else {
                            0
                        };
                        if !(0xDC00..0xE000).contains(&low) {
                            return Err(format!("lone surrogate \\u{v:04x} at column {col}"));
                        }
                        char::from_u32(0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00))
                    } else {
                        char::from_u32(v)
                    };
                    s.push(ch.ok_or_else(|| format!("lone surrogate \\u{v:04x} at column {col}"))?);
                }
                'U' => {
                    let v = self.hex(8, "U")?;
                    s.push(char::from_u32(v).ok_or_else(|| format!("\\U{v:08x} at column {col} is not a character"))?);
                }
                other => {
                    // Python keeps unknown escapes as they are
                    s.push('\\');
                    s.push(other);
                }
            }
        }
    }
}

/// One MMSD line → record, or an error message (without file and line).
pub fn parse_mmsd_line(line: &str) -> std::result::Result<MmsdRecord, String> {
    let v = parse_py_list(line)?;
    if !(3..=4).contains(&v.len()) {
        return Err(format!("expected [id, text, label] or [id, text, ocr, label], found a list of {} values", v.len()));
    }
    let id = match &v[0] {
        PyValue::Str(s) => s.trim().to_string(),
        PyValue::Int(n) => n.to_string(),
    };
    if id.is_empty() {
        return Err("empty id".into());
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("id {id:?} is not a plain identifier (letters, digits, `_`, `-`)"));
    }
    let PyValue::Str(text) = &v[1] else { return Err("the text (second value) must be a string".into()) };
    let ocr = match v.get(2) {
        Some(PyValue::Str(o)) if v.len() == 4 => Some(o.clone()),
        _ => None,
    };
    let label = match v.last() {
        Some(PyValue::Int(0)) => 0,
        Some(PyValue::Int(1)) => 1,
        Some(other) => return Err(format!("the label (last value) must be 0 or 1, found {other:?}")),
        None => unreachable!("length checked"),
    };
    Ok(MmsdRecord { id, text: text.clone(), ocr, label })
}

fn image_path(image_dir: &str, id: &str) -> String {
    let dir = image_dir.trim_end_matches('/');
    if dir.is_empty() { format!("{id}.jpg") } else { format!("{dir}/{id}.jpg") }
}

#[allow(clippy::too_many_arguments)]
fn push_sample(out: &mut Vec<ClsSample>, report: &mut MmsdReport, id: String, text: String, ocr: Option<String>, label: u8, image_dir: &str, line: usize) {
    if text.trim().is_empty() {
        report.skipped_empty += 1;
        return;
    }
    if label == 1 {
        report.sarcastic += 1;
    } else {
        report.not_sarcastic += 1;
    }
    let image = Some(image_path(image_dir, &id));
    out.push(ClsSample { id, text, image, label: MMSD_LABELS[label as usize].to_string(), ocr, line });
}

/// Read an MMSD text file; images are `<image_dir>/<id>.jpg`.
pub fn read_mmsd_txt(path: &Path, image_dir: &str) -> Result<(Vec<ClsSample>, MmsdReport)> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        DataError::format(path, line, "not valid UTF-8")
    })?;
    parse_mmsd_txt(&text, path, image_dir)
}

/// Parse MMSD text (`path` only names the source in errors). Blank lines are ignored.
pub fn parse_mmsd_txt(text: &str, path: &Path, image_dir: &str) -> Result<(Vec<ClsSample>, MmsdReport)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut report = MmsdReport::default();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        report.lines = line_no;
        if line.trim().is_empty() {
            continue;
        }
        let r = parse_mmsd_line(line).map_err(|m| DataError::format(path, line_no, m))?;
        report.with_ocr += usize::from(r.ocr.is_some());
        push_sample(&mut out, &mut report, r.id, r.text, r.ocr, r.label, image_dir, line_no);
    }
    report.samples = out.len();
    Ok((out, report))
}

#[derive(Deserialize)]
struct Mmsd2Item {
    #[serde(deserialize_with = "id_string_or_number")]
    image_id: String,
    text: String,
    #[serde(deserialize_with = "label_0_1")]
    label: u8,
}

fn id_string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(u64),
    }
    match Id::deserialize(d) {
        Ok(Id::S(s)) => Ok(s),
        Ok(Id::N(n)) => Ok(n.to_string()),
        Err(_) => Err(serde::de::Error::custom("`image_id` must be a string or a non-negative integer")),
    }
}

fn label_0_1<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u8, D::Error> {
    match i64::deserialize(d) {
        Ok(v @ (0 | 1)) => Ok(v as u8),
        Ok(v) => Err(serde::de::Error::custom(format!("`label` must be 0 or 1, found {v}"))),
        Err(_) => Err(serde::de::Error::custom("`label` must be the integer 0 or 1")),
    }
}

/// Read an MMSD2.0 JSON file; images are `<image_dir>/<image_id>.jpg`.
pub fn read_mmsd2_json(path: &Path, image_dir: &str) -> Result<(Vec<ClsSample>, MmsdReport)> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    parse_mmsd2_json(&text, path, image_dir)
}

/// Parse MMSD2.0 JSON (`path` only names the source in errors). Each sample's
/// [`ClsSample::line`] is the line its object starts on.
pub fn parse_mmsd2_json(text: &str, path: &Path, image_dir: &str) -> Result<(Vec<ClsSample>, MmsdReport)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let line_at = |byte: usize| 1 + text.as_bytes()[..byte].iter().filter(|&&b| b == b'\n').count();
    let skip_ws = |mut i: usize| {
        while i < text.len() && text.as_bytes()[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut report = MmsdReport::default();
    let mut i = skip_ws(0);
    if text.as_bytes().get(i) != Some(&b'[') {
        return Err(DataError::format(path, line_at(i), "expected a JSON array `[` of {\"image_id\", \"text\", \"label\"} objects"));
    }
    i = skip_ws(i + 1);
    if text.as_bytes().get(i) == Some(&b']') {
        i += 1;
    } else {
        loop {
            let start = i;
            let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Mmsd2Item>();
            let item = match stream.next() {
                Some(Ok(item)) => item,
                Some(Err(e)) => {
                    let msg = e.to_string();
                    let msg = msg.rfind(" at line ").map_or(msg.as_str(), |k| &msg[..k]);
                    let line = line_at(start) + e.line().max(1) - 1;
                    return Err(DataError::format(path, line, format!("malformed MMSD2.0 object: {msg}")));
                }
                None => return Err(DataError::format(path, line_at(start), "unterminated array: expected an object")),
            };
            let line = line_at(start);
            report.lines += 1;
            push_sample(&mut out, &mut report, item.image_id, item.text, None, item.label, image_dir, line);
            i = skip_ws(start + stream.byte_offset());
            match text.as_bytes().get(i) {
                Some(b',') => i = skip_ws(i + 1),
                Some(b']') => {
                    i += 1;
                    break;
                }
                Some(_) => return Err(DataError::format(path, line_at(i), "expected `,` or `]` after an object")),
                None => return Err(DataError::format(path, line_at(i), "unterminated array: expected `,` or `]`")),
            }
        }
    }
    let end = skip_ws(i);
    if end < text.len() {
        return Err(DataError::format(path, line_at(end), "unexpected content after the JSON array"));
    }
    report.samples = out.len();
    Ok((out, report))
}

/// `mmfuse prepare-mmsd`: read the three splits (MMSD `.txt`, or MMSD2.0 `.json` by extension)
/// with images under `image_dir` (made absolute) and write `train.jsonl`, `dev.jsonl`,
/// `test.jsonl` to `out`. Returns each split's report.
pub fn prepare_mmsd(splits: [&Path; 3], image_dir: &Path, out: &Path) -> Result<Vec<MmsdReport>> {
    let images = std::path::absolute(image_dir).map_err(|e| DataError::io(image_dir, e))?;
    let images = images.to_string_lossy().into_owned();
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let mut reports = Vec::new();
    for (src, name) in splits.into_iter().zip(["train.jsonl", "dev.jsonl", "test.jsonl"]) {
        let (samples, report) = if src.extension().is_some_and(|e| e == "json") { read_mmsd2_json(src, &images)? } else { read_mmsd_txt(src, &images)? };
        crate::cls::write_jsonl(&out.join(name), &samples)?;
        reports.push(report);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn p() -> &'static Path {
        Path::new("mmsd/train.txt")
    }

    #[test]
    fn parses_python_literals_with_escapes() {
        let v = parse_py_list(r#"['682716753374351360', 'it\'s "great" \\ o/\nnew line \x41\u00e9\U0001F600 \d', 1]"#).unwrap();
        assert_eq!(v, vec![PyValue::Str("682716753374351360".into()), PyValue::Str("it's \"great\" \\ o/\nnew line Aé😀 \\d".into()), PyValue::Int(1)]);
        // double quotes (Python's repr when the text holds a single quote), u prefix, trailing comma
        let v = parse_py_list(r#"  [u"12", "don't \"stop\"\t", -3, ]  "#).unwrap();
        assert_eq!(v, vec![PyValue::Str("12".into()), PyValue::Str("don't \"stop\"\t".into()), PyValue::Int(-3)]);
        // octal, surrogate pair, non-ASCII written literally
        let v = parse_py_list(r"['\101\0', '\ud83d\ude00', 'naïve 中文']").unwrap();
        assert_eq!(v, vec![PyValue::Str("A\0".into()), PyValue::Str("😀".into()), PyValue::Str("naïve 中文".into())]);
        assert_eq!(parse_py_list("[]").unwrap(), vec![]);
    }

    #[test]
    fn reads_mmsd_lines_with_and_without_ocr() {
        let text = "\u{feff}['682716753374351360', 'yay , another #monday ! <user>', 1]\n\n['100', \"what's up\", 'SALE 50%\\nOFF', 0]\r\n['101', '   ', 0]\n[102, 'numeric id', 0, 1]\n";
        let (s, r) = parse_mmsd_txt(text, p(), "images/").unwrap();
        assert_eq!(r, MmsdReport { lines: 5, samples: 3, skipped_empty: 1, sarcastic: 2, not_sarcastic: 1, with_ocr: 1 });
        assert_eq!(
            s[0],
            ClsSample {
                id: "682716753374351360".into(),
                text: "yay , another #monday ! <user>".into(),
                image: Some("images/682716753374351360.jpg".into()),
                label: SARCASTIC.into(),
                ocr: None,
                line: 1
            }
        );
        assert_eq!(
            s[1],
            ClsSample {
                id: "100".into(),
                text: "what's up".into(),
                image: Some("images/100.jpg".into()),
                label: NOT_SARCASTIC.into(),
                ocr: Some("SALE 50%\nOFF".into()),
                line: 3
            }
        );
        // a 4-value line whose third value is an integer: the label is the last value
        assert_eq!((s[2].id.as_str(), s[2].label.as_str(), s[2].line), ("102", SARCASTIC, 5));
        let r = parse_mmsd_line("['100', \"what's up\", 'SALE 50%\\nOFF', 0]").unwrap();
        assert_eq!(r, MmsdRecord { id: "100".into(), text: "what's up".into(), ocr: Some("SALE 50%\nOFF".into()), label: 0 });
        // no image folder: the bare file name
        let (s, _) = parse_mmsd_txt("['7', 'x', 0]", p(), "").unwrap();
        assert_eq!(s[0].image.as_deref(), Some("7.jpg"));
    }

    #[test]
    fn malformed_mmsd_lines_name_file_and_line() {
        let ok = "['1', 'fine', 0]\n";
        let cases = [
            (format!("{ok}\n['2', 'x', 2]\n"), "mmsd/train.txt:3: the label (last value) must be 0 or 1, found Int(2)"),
            (format!("{ok}['2', 'unterminated, 1]\n"), "mmsd/train.txt:2: unterminated string opened at column 7"),
            (format!("{ok}['2', 'x']\n"), "mmsd/train.txt:2: expected [id, text, label] or [id, text, ocr, label], found a list of 2 values"),
            (format!("{ok}{ok}['2', 'x', 1] junk\n"), "mmsd/train.txt:3: unexpected 'j' after the list at column 15"),
            (format!("{ok}('2', 'x', 1)\n"), "mmsd/train.txt:2: expected `[` at column 1, found '('"),
            (format!("{ok}['2', 'x', '1']\n"), "mmsd/train.txt:2: the label (last value) must be 0 or 1, found Str(\"1\")"),
            (format!("{ok}['2', 'bad \\x4', 1]\n"), "mmsd/train.txt:2: truncated \\x escape"),
            (format!("{ok}['2', 'x' 1]\n"), "mmsd/train.txt:2: expected `,` or `]` at column 11, found '1'"),
            (format!("{ok}['../etc/passwd', 'x', 1]\n"), "mmsd/train.txt:2: id \"../etc/passwd\" is not a plain identifier"),
            (format!("{ok}[__import__('os'), 'x', 1]\n"), "mmsd/train.txt:2: expected a string or an integer at column 2, found '_'"),
            (format!("{ok}['2', 'x', 99999999999999999999]\n"), "mmsd/train.txt:2: bad integer \"99999999999999999999\""),
        ];
        for (text, expected) in cases {
            let e = parse_mmsd_txt(&text, p(), "images").unwrap_err().to_string();
            assert!(e.starts_with(expected), "input {text:?}: got {e:?}, expected {expected:?}");
        }
    }

    #[test]
    fn the_literal_parser_never_panics_on_random_input() {
        let mut rng = StdRng::seed_from_u64(2022);
        // random bytes (lossily decoded) and random strings over the parser's special characters
        let alphabet: Vec<char> = "[]'\",\\ uUxX0123456789abcdefn-+_ \t\né😀".chars().collect();
        for _ in 0..20_000 {
            let n = rng.random_range(0..40);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            let _ = parse_py_list(&String::from_utf8_lossy(&bytes));
            let s: String = (0..n).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect();
            let _ = parse_py_list(&s);
            let _ = parse_mmsd_line(&format!("[{s}"));
        }
        // every proper prefix of a valid line is an error, never a panic
        let lines = [r#"['682716753374351360', 'it\'s \"great\" \\ \x41\u00e9\U0001F600 \ud83d\ude00 \101', 1]"#, r#"["100", "what's up", 'SALE\n50%', 0]"#];
        for line in lines {
            assert!(parse_mmsd_line(line).is_ok(), "{line}");
            for (k, _) in line.char_indices() {
                let prefix = &line[..k];
                assert!(parse_py_list(prefix).is_err(), "prefix {prefix:?} parsed");
                assert!(parse_mmsd_line(prefix).is_err());
            }
        }
    }

    #[test]
    fn reads_mmsd2_json() {
        let text = "[\n  {\"image_id\": \"682716753374351360\", \"text\": \"sure , \\\"great\\\" idea\", \"label\": 1},\n  {\"image_id\": 915657464401580032,\n   \"text\": \"a cat\", \"label\": 0, \"extra\": [1]},\n  {\"image_id\": \"3\", \"text\": \" \", \"label\": 0}\n]\n";
        let (s, r) = parse_mmsd2_json(text, Path::new("mmsd2/train.json"), "images").unwrap();
        assert_eq!(r, MmsdReport { lines: 3, samples: 2, skipped_empty: 1, sarcastic: 1, not_sarcastic: 1, with_ocr: 0 });
        assert_eq!(
            s[0],
            ClsSample {
                id: "682716753374351360".into(),
                text: "sure , \"great\" idea".into(),
                image: Some("images/682716753374351360.jpg".into()),
                label: SARCASTIC.into(),
                ocr: None,
                line: 2
            }
        );
        assert_eq!(
            s[1],
            ClsSample {
                id: "915657464401580032".into(),
                text: "a cat".into(),
                image: Some("images/915657464401580032.jpg".into()),
                label: NOT_SARCASTIC.into(),
                ocr: None,
                line: 3
            }
        );
        assert_eq!(parse_mmsd2_json(" [ ] ", Path::new("x.json"), "images").unwrap().0, vec![]);
    }

    #[test]
    fn malformed_mmsd2_json_names_file_and_line() {
        let f = Path::new("mmsd2/test.json");
        let ok = "{\"image_id\": \"1\", \"text\": \"a\", \"label\": 0}";
        let cases = [
            (
                format!("[\n{ok},\n{{\"image_id\": \"2\", \"text\": \"b\",\n \"label\": 2}}\n]"),
                "mmsd2/test.json:4: malformed MMSD2.0 object: `label` must be 0 or 1, found 2",
            ),
            (format!("[\n{ok},\n{{\"image_id\": \"2\", \"label\": 1}}\n]"), "mmsd2/test.json:3: malformed MMSD2.0 object: missing field `text`"),
            (format!("[\n{ok}\n{ok}\n]"), "mmsd2/test.json:3: expected `,` or `]` after an object"),
            (format!("[\n{ok},\n"), "mmsd2/test.json:3: unterminated array: expected an object"),
            (ok.to_string(), "mmsd2/test.json:1: expected a JSON array"),
            (format!("[{ok}] x"), "mmsd2/test.json:1: unexpected content after the JSON array"),
            ("[{\"image_id\": [1], \"text\": \"a\", \"label\": 0}]".to_string(), "mmsd2/test.json:1: malformed MMSD2.0 object: `image_id` must be a string"),
        ];
        for (text, expected) in cases {
            let e = parse_mmsd2_json(&text, f, "images").unwrap_err().to_string();
            assert!(e.starts_with(expected), "input {text:?}: got {e:?}, expected {expected:?}");
        }
    }

    #[test]
    fn reads_files_from_disk() {
        let dir = std::env::temp_dir().join(format!("mmfuse-mmsd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("train.txt"), "['1', 'a', 1]\n['2', 'b', 'ocr', 0]\n").unwrap();
        std::fs::write(dir.join("train.json"), "[{\"image_id\": \"1\", \"text\": \"a\", \"label\": 1}]").unwrap();
        let (s, r) = read_mmsd_txt(&dir.join("train.txt"), "images").unwrap();
        assert_eq!((s.len(), r.with_ocr), (2, 1));
        let (s, _) = read_mmsd2_json(&dir.join("train.json"), "images").unwrap();
        assert_eq!(s[0].label, SARCASTIC);
        std::fs::write(dir.join("bad.txt"), b"['1', 'a', 1]\n['2', '\xff', 0]\n").unwrap();
        let e = read_mmsd_txt(&dir.join("bad.txt"), "images").unwrap_err().to_string();
        assert!(e.ends_with("bad.txt:2: not valid UTF-8"), "{e}");
        let e = read_mmsd_txt(&dir.join("absent.txt"), "images").unwrap_err().to_string();
        assert!(e.starts_with("cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
