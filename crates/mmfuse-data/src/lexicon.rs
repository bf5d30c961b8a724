//! Affective lexicons (SenticNet-style word → polarity) for CLFA's optional lexicon attention
//! biases. The file is plain text, one entry per line: a word (or a multi-word concept written
//! with `_`, as SenticNet does) and its polarity in `[-1, 1]`, separated by a tab, a comma or
//! spaces; blank lines and lines starting with `#` are skipped, and a first line whose value is
//! not a number is taken as a header. Words are matched lowercased; multi-word concepts are
//! kept but only single words can match a token.

use crate::error::{DataError, Result};
use std::collections::HashMap;
use std::path::Path;

/// Word → polarity.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lexicon {
    pub polarity: HashMap<String, f32>,
}

impl Lexicon {
    /// Read a lexicon file (see the module doc); errors name the file and line.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let mut polarity = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (word, value) = match line.split_once(['\t', ',']) {
                Some((w, v)) => (w.trim(), v.trim()),
                None => match line.rsplit_once(char::is_whitespace) {
                    Some((w, v)) => (w.trim(), v.trim()),
                    None => return Err(DataError::format(path, i + 1, format!("expected `word<TAB>polarity`, found '{line}'"))),
                },
            };
            let v: f32 = match value.parse() {
                Ok(v) => v,
                Err(_) if polarity.is_empty() && i == 0 => continue, // header
                Err(_) => return Err(DataError::format(path, i + 1, format!("polarity '{value}' of '{word}' is not a number"))),
            };
            if !(v.is_finite() && (-1.0..=1.0).contains(&v)) {
                return Err(DataError::format(path, i + 1, format!("polarity {value} of '{word}' is outside [-1, 1]")));
            }
            if word.is_empty() {
                return Err(DataError::format(path, i + 1, "empty word"));
            }
            polarity.insert(word.to_lowercase(), v);
        }
        if polarity.is_empty() {
            return Err(DataError::Other(format!("{}: the lexicon has no entries", path.display())));
        }
        Ok(Self { polarity })
    }

    /// |polarity| of `word` (lowercased), 0 when absent.
    pub fn weight(&self, word: &str) -> f32 {
        self.polarity.get(&word.to_lowercase()).map_or(0.0, |p| p.abs())
    }

    /// Per-position weights of an encoding: each piece gets its word's |polarity| (specials and
    /// padding 0). `word_index` comes from [`crate::text::TextTokenizer::encode_words`].
    pub fn position_weights(&self, words: &[String], word_index: &[Option<usize>]) -> Vec<f32> {
        word_index.iter().map(|w| w.and_then(|w| words.get(w)).map_or(0.0, |w| self.weight(w))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, body: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("mmfuse-lexicon-{}-{name}", std::process::id()));
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn reads_tab_comma_and_space_separated_entries_with_a_header() {
        let p = write("ok.tsv", "concept\tpolarity\n# comment\nGood\t0.8\nbad,-0.6\n\nawful   -0.9\na_little_bit\t0.1\n");
        let l = Lexicon::read(&p).unwrap();
        assert_eq!(l.polarity.len(), 4);
        assert_eq!(l.weight("GOOD"), 0.8);
        assert_eq!(l.weight("bad"), 0.6);
        assert_eq!(l.weight("awful"), 0.9);
        assert_eq!(l.weight("movie"), 0.0);
        let words: Vec<String> = ["so", "good", "bad"].iter().map(|s| s.to_string()).collect();
        // [CLS] so good good(piece) bad [SEP] pad
        let wi = [None, Some(0), Some(1), Some(1), Some(2), None, None];
        assert_eq!(l.position_weights(&words, &wi), vec![0.0, 0.0, 0.8, 0.8, 0.6, 0.0, 0.0]);
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let p = write("bad.tsv", "good\t0.8\nbad\tminus\n");
        let e = Lexicon::read(&p).unwrap_err().to_string();
        assert!(e.ends_with("bad.tsv:2: polarity 'minus' of 'bad' is not a number"), "{e}");
        let p = write("range.tsv", "good\t1.8\n");
        assert!(Lexicon::read(&p).unwrap_err().to_string().contains(":1: polarity 1.8 of 'good' is outside [-1, 1]"));
        let p = write("empty.tsv", "# nothing\n");
        assert!(Lexicon::read(&p).unwrap_err().to_string().contains("no entries"));
    }
}
