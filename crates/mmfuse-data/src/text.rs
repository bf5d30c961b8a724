//! Text tokenisation with the Hugging Face `tokenizers` crate: word-level tokenizers trained on
//! the train split for from-scratch encoders, or any `tokenizer.json` (BERT WordPiece, CLIP
//! BPE) for pretrained ones. Both save and load as `tokenizer.json`.
//!
//! [`TextTokenizer`] fixes the length (`max_len`, padding with `[PAD]`, truncation counted) and,
//! for tagging, aligns word pieces to words (`word_index`, `first_piece`): the first piece of a
//! word carries the word's tag.

use crate::error::{DataError, Result};
use std::path::Path;
use tokenizers::AddedToken;
pub use tokenizers::Tokenizer;
use tokenizers::models::wordlevel::{WordLevel, WordLevelTrainerBuilder};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::normalizers::Lowercase;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;

/// Special tokens of word-level tokenizers, with fixed ids 0..3.
pub const SPECIALS: [&str; 4] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
/// Id of `[CLS]` in word-level tokenizers (the start-of-sequence of captions).
pub const CLS_ID: u32 = 2;
/// Id of `[SEP]` in word-level tokenizers (the end-of-sequence of captions).
pub const SEP_ID: u32 = 3;

/// A caption over a word-level vocabulary: `[CLS]` (SOS), the word ids of `text`, `[SEP]` (EOS),
/// at most `max_len` ids in all (words beyond are cut).
pub fn caption_ids(tok: &Tokenizer, text: &str, max_len: usize) -> Result<Vec<u32>> {
    let e = tok.encode(text, false).map_err(|e| tk_err(Path::new("<caption tokenizer>"), e))?;
    let mut ids = vec![CLS_ID];
    ids.extend(e.get_ids().iter().take(max_len.saturating_sub(2)));
    ids.push(SEP_ID);
    Ok(ids)
}

fn tk_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Tokenizer { path: path.to_path_buf(), message: e.to_string() }
}

/// Train a word-level tokenizer (whitespace split, optional lowercasing) on `texts`: words seen
/// at least `min_count` times get an id; others map to `[UNK]`.
pub fn train_word_tokenizer(texts: impl Iterator<Item = String>, min_count: u32, lowercase: bool) -> Result<Tokenizer> {
    let here = Path::new("<word-level tokenizer>");
    let model = WordLevel::builder().unk_token("[UNK]".into()).build().map_err(|e| tk_err(here, e))?;
    let mut tok = Tokenizer::new(model);
    if lowercase {
        tok.with_normalizer(Some(Lowercase));
    }
    tok.with_pre_tokenizer(Some(WhitespaceSplit));
    let trainer = WordLevelTrainerBuilder::default()
        .min_frequency(min_count as u64)
        .vocab_size(usize::MAX)
        .show_progress(false)
        .special_tokens(SPECIALS.iter().map(|s| AddedToken::from(*s, true)).collect())
        .build()
        .map_err(|e| tk_err(here, e))?;
    let mut trainer = TrainerWrapper::WordLevelTrainer(trainer);
    let texts: Vec<String> = texts.collect();
    tok.train(&mut trainer, texts.into_iter()).map_err(|e| tk_err(here, e))?;
    Ok(tok)
}

/// A fixed-length encoding.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    /// Token ids, `max_len` long, padded with the pad id.
    pub ids: Vec<u32>,
    /// True at real tokens.
    pub mask: Vec<bool>,
    /// Whether the text was cut.
    pub truncated: bool,
}

/// A fixed-length encoding of pre-split words, with word alignment.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedWords {
    pub ids: Vec<u32>,
    pub mask: Vec<bool>,
    /// For each position, the word it came from (None for specials and padding).
    pub word_index: Vec<Option<usize>>,
    /// True at the first piece of each word.
    pub first_piece: Vec<bool>,
    pub truncated: bool,
}

/// Read a `tokenizer.json`. A malformed file is an error naming it: the `tokenizers` crate
/// panics on some malformed files (e.g. a damaged `decoder`, found by `tests/fuzz.rs`), and
/// that panic is caught here and reported as an error.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let bytes = std::fs::read(path).map_err(|e| tk_err(path, e))?;
    match std::panic::catch_unwind(|| Tokenizer::from_bytes(&bytes)) {
        Ok(r) => r.map_err(|e| tk_err(path, e)),
        Err(_) => Err(tk_err(path, "malformed tokenizer.json (the tokenizers crate could not read it)")),
    }
}

/// Write `tokenizer` to `path` (pretty JSON), atomically.
pub fn save_tokenizer(tokenizer: &Tokenizer, path: &Path) -> Result<()> {
    let json = tokenizer.to_string(true).map_err(|e| tk_err(path, e))?;
    crate::fsutil::write_atomic(path, json.as_bytes())
}

/// Fixed-length encoding with a tokenizer.
#[derive(Clone)]
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    max_len: usize,
    pad_id: u32,
    /// Prepended id when the tokenizer has no post-processor of its own (word-level).
    cls_id: Option<u32>,
    /// The tokenizer adds its own specials (`[CLS]` … `[SEP]` for BERT).
    own_specials: bool,
    /// The model's unknown token, stood in for words that would otherwise yield no piece.
    unk: Option<String>,
}

impl TextTokenizer {
    /// Wrap a tokenizer. Padding and truncation configured in the tokenizer are disabled: the
    /// encoder pads and truncates itself. With `cls`, word-level tokenizers get `[CLS]` first.
    pub fn new(mut tokenizer: Tokenizer, max_len: usize, cls: bool) -> Self {
        tokenizer.with_padding(None);
        let _ = tokenizer.with_truncation(None);
        let own_specials = tokenizer.get_post_processor().is_some();
        let pad_id = tokenizer.token_to_id("[PAD]").or_else(|| tokenizer.token_to_id("<pad>")).unwrap_or(0);
        let cls_id = if cls && !own_specials { tokenizer.token_to_id("[CLS]") } else { None };
        let unk = match tokenizer.get_model() {
            ModelWrapper::WordPiece(m) => Some(m.unk_token.clone()),
            ModelWrapper::WordLevel(m) => Some(m.unk_token.clone()),
            ModelWrapper::BPE(m) => m.unk_token.clone(),
            ModelWrapper::Unigram(_) => None,
        };
        let unk = unk.filter(|u| tokenizer.token_to_id(u).is_some());
        Self { tokenizer, max_len, pad_id, cls_id, own_specials, unk }
    }

    /// Load a `tokenizer.json`.
    pub fn from_file(path: &Path, max_len: usize, cls: bool) -> Result<Self> {
        Ok(Self::new(load_tokenizer(path)?, max_len, cls))
    }

    /// Write the tokenizer as `tokenizer.json`, atomically (a kill mid-write leaves the old file).
    pub fn save(&self, path: &Path) -> Result<()> {
        save_tokenizer(&self.tokenizer, path)
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
    pub fn max_len(&self) -> usize {
        self.max_len
    }
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    fn finish(&self, mut ids: Vec<u32>, mut words: Vec<Option<usize>>) -> (Vec<u32>, Vec<bool>, Vec<Option<usize>>, bool) {
        if let Some(c) = self.cls_id {
            ids.insert(0, c);
            words.insert(0, None);
        }
        let truncated = ids.len() > self.max_len;
        if truncated {
            if self.own_specials && self.max_len >= 2 {
                // keep the closing special ([SEP]) as the tokenizer would
                let last = *ids.last().expect("non-empty");
                ids.truncate(self.max_len - 1);
                words.truncate(self.max_len - 1);
                ids.push(last);
                words.push(None);
            } else {
                ids.truncate(self.max_len);
                words.truncate(self.max_len);
            }
        }
        let n = ids.len();
        let mut mask = vec![true; n];
        ids.resize(self.max_len, self.pad_id);
        mask.resize(self.max_len, false);
        words.resize(self.max_len, None);
        (ids, mask, words, truncated)
    }

    /// Encode a raw text.
    pub fn encode(&self, text: &str) -> Encoded {
        let (ids, words) = match self.tokenizer.encode(text, self.own_specials) {
            Ok(e) => (e.get_ids().to_vec(), vec![None; e.get_ids().len()]),
            Err(_) => (vec![], vec![]),
        };
        let (ids, mask, _, truncated) = self.finish(ids, words);
        Encoded { ids, mask, truncated }
    }

    fn pieces(&self, input: Vec<&str>) -> (Vec<u32>, Vec<Option<usize>>) {
        match self.tokenizer.encode(input, self.own_specials) {
            Ok(e) => (e.get_ids().to_vec(), e.get_word_ids().iter().map(|w| w.map(|w| w as usize)).collect()),
            Err(_) => (vec![], vec![]),
        }
    }

    /// Encode pre-split words (the tokenizer's pre-tokenized input, so word boundaries are the
    /// given ones), keeping the word of each piece. A word that the tokenizer would drop
    /// entirely (e.g. a lone U+FE0F variation selector, which BERT's normaliser strips) is
    /// encoded as the unknown token, so every word that fits in `max_len` has a first piece.
    pub fn encode_words(&self, words: &[String]) -> EncodedWords {
        let mut input: Vec<&str> = words.iter().map(String::as_str).collect();
        let (mut ids, mut word_ids) = self.pieces(input.clone());
        let mut seen = vec![false; words.len()];
        for w in word_ids.iter().flatten() {
            if let Some(s) = seen.get_mut(*w) {
                *s = true;
            }
        }
        if let Some(unk) = &self.unk
            && seen.contains(&false)
        {
            for (i, s) in seen.iter().enumerate() {
                if !s {
                    input[i] = unk;
                }
            }
            (ids, word_ids) = self.pieces(input);
        }
        let (ids, mask, word_index, truncated) = self.finish(ids, word_ids);
        let mut first_piece = vec![false; word_index.len()];
        let mut prev = None;
        for (p, w) in word_index.iter().enumerate() {
            if w.is_some() && *w != prev {
                first_piece[p] = true;
            }
            if w.is_some() {
                prev = *w;
            }
        }
        EncodedWords { ids, mask, word_index, first_piece, truncated }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_level_tokenizer_trains_saves_and_encodes() {
        let texts = ["the cat sat", "The dog sat", "a bird"].iter().map(|s| s.to_string());
        let tok = train_word_tokenizer(texts, 2, true).unwrap();
        // "the" and "sat" occur twice; the rest map to [UNK]
        let enc = TextTokenizer::new(tok, 6, true);
        assert_eq!(enc.vocab_size(), 6);
        for (i, sp) in SPECIALS.iter().enumerate() {
            assert_eq!(enc.tokenizer().token_to_id(sp), Some(i as u32));
        }
        assert_eq!(enc.pad_id(), 0);
        // most frequent first, ties alphabetical: deterministic ids
        let (sat, the) = (4, 5);
        assert_eq!(enc.tokenizer().token_to_id("sat"), Some(sat));
        assert_eq!(enc.tokenizer().token_to_id("the"), Some(the));
        let e = enc.encode("The sat zebra");
        assert_eq!(e.ids, vec![2, the, sat, 1, 0, 0]);
        assert_eq!(e.mask, vec![true, true, true, true, false, false]);
        assert!(!e.truncated);
        let dir = std::env::temp_dir().join(format!("mmfuse-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        enc.save(&dir.join("tokenizer.json")).unwrap();
        let again = TextTokenizer::from_file(&dir.join("tokenizer.json"), 3, true).unwrap();
        let e2 = again.encode("the sat the sat");
        assert_eq!(e2.ids, vec![2, the, sat]);
        assert_eq!(e2.mask, vec![true; 3]);
        assert!(e2.truncated);
        // pre-split words: one id per word, every word its own first piece
        let w = again.encode_words(&["The".to_string(), "sat".to_string()]);
        assert_eq!((w.ids, w.word_index, w.first_piece), (vec![2, the, sat], vec![None, Some(0), Some(1)], vec![false, true, true]));
        let e = TextTokenizer::from_file(&dir.join("absent.json"), 3, true).err().unwrap().to_string();
        assert!(e.starts_with(&format!("tokenizer {}: ", dir.join("absent.json").display())), "{e}");
        // case-sensitive variant, no [CLS]
        let cased = TextTokenizer::new(train_word_tokenizer(["The the".to_string()].into_iter(), 1, false).unwrap(), 3, false);
        assert_eq!(cased.vocab_size(), 6);
        let ids = cased.encode("the The THE").ids;
        assert_eq!((ids[2], ids[0] != ids[1]), (1, true));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn minilm() -> Option<std::path::PathBuf> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/all-minilm-l6-v2/tokenizer.json");
        if path.exists() {
            Some(path)
        } else {
            eprintln!("note: {} is absent; skipping this test", path.display());
            None
        }
    }

    fn pieces(enc: &TextTokenizer, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|&i| enc.tokenizer().id_to_token(i).unwrap()).collect()
    }

    #[test]
    fn minilm_word_pieces_of_the_brief_example() {
        let Some(path) = minilm() else { return };
        let enc = TextTokenizer::from_file(&path, 10, true).unwrap();
        assert_eq!(enc.pad_id(), 0);
        assert_eq!(enc.vocab_size(), 30522);
        let hello = enc.encode("hello world");
        assert_eq!(hello.ids, [101, 7592, 2088, 102, 0, 0, 0, 0, 0, 0]);
        assert_eq!(hello.mask, [true, true, true, true, false, false, false, false, false, false]);
        let words: Vec<String> = ["George", "Zimmerman", "unbelievablyyy"].iter().map(|s| s.to_string()).collect();
        let enc = TextTokenizer::from_file(&path, 14, true).unwrap();
        let e = enc.encode_words(&words);
        // greedy longest-match WordPiece (checked against vocab.txt by hand)
        let expected = ["[CLS]", "george", "zimmerman", "un", "##bel", "##ie", "##va", "##bly", "##y", "##y", "[SEP]"];
        assert_eq!(pieces(&enc, &e.ids[..11]), expected);
        assert_eq!(e.ids, [101, 2577, 27946, 4895, 8671, 2666, 3567, 6321, 2100, 2100, 102, 0, 0, 0]);
        let w2 = Some(2);
        assert_eq!(e.word_index, [None, Some(0), Some(1), w2, w2, w2, w2, w2, w2, w2, None, None, None, None]);
        let (t, f) = (true, false);
        assert_eq!(e.first_piece, [f, t, t, t, f, f, f, f, f, f, f, f, f, f]);
        assert_eq!(e.mask, [t, t, t, t, t, t, t, t, t, t, t, f, f, f]);
        assert!(!e.truncated);
    }

    #[test]
    fn words_the_tokenizer_would_drop_become_unk() {
        let Some(path) = minilm() else { return };
        let enc = TextTokenizer::from_file(&path, 8, true).unwrap();
        let words: Vec<String> = ["nice", "\u{fe0f}", "day", "\u{200b}"].iter().map(|s| s.to_string()).collect();
        let e = enc.encode_words(&words);
        assert_eq!(pieces(&enc, &e.ids[..6]), ["[CLS]", "nice", "[UNK]", "day", "[UNK]", "[SEP]"]);
        assert_eq!(e.word_index[..6], [None, Some(0), Some(1), Some(2), Some(3), None]);
        assert_eq!(e.first_piece[..6], [false, true, true, true, true, false]);
        // the word-level tokenizer never drops a word either (empty words included)
        let wl = TextTokenizer::new(train_word_tokenizer(["nice day".to_string()].into_iter(), 1, true).unwrap(), 6, false);
        let words: Vec<String> = ["Nice", "", "zebra"].iter().map(|s| s.to_string()).collect();
        let e = wl.encode_words(&words);
        let nice = wl.tokenizer().token_to_id("nice").unwrap();
        assert_eq!(e.ids, [nice, 1, 1, 0, 0, 0]);
        assert_eq!(e.word_index, [Some(0), Some(1), Some(2), None, None, None]);
        assert_eq!(e.first_piece, [true, true, true, false, false, false]);
    }

    #[test]
    fn wordpiece_alignment_with_minilm() {
        let Some(path) = minilm() else { return };
        let enc = TextTokenizer::from_file(&path, 12, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(enc.encode("hello world").ids[..4], [101, 7592, 2088, 102]);
        let words: Vec<String> = ["George", "Zimmermannxq", "shot"].iter().map(|s| s.to_string()).collect();
        let e = enc.encode_words(&words);
        let pieces: Vec<String> = e.ids.iter().map(|&i| enc.tokenizer().id_to_token(i).unwrap()).collect();
        // greedy longest-match WordPiece: zimmermannxq -> zimmerman ##nx ##q
        assert_eq!(&pieces[..7], ["[CLS]", "george", "zimmerman", "##nx", "##q", "shot", "[SEP]"]);
        assert_eq!(&e.word_index[..7], [None, Some(0), Some(1), Some(1), Some(1), Some(2), None]);
        assert_eq!(&e.first_piece[..7], [false, true, true, false, false, true, false]);
        assert_eq!(e.mask.iter().filter(|m| **m).count(), 7);
        // truncation keeps [SEP] last; the cut word has no first piece
        let short = TextTokenizer::from_file(&path, 5, true).unwrap().encode_words(&words);
        assert!(short.truncated);
        assert_eq!(short.ids[4], 102);
        assert_eq!(short.first_piece, [false, true, true, false, false]);
    }
}
