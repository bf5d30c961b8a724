//! Entity-level NER precision / recall / F1 over BIO (IOB2) tag sequences.
//!
//! Tags are strings such as `"O"`, `"B-PER"`, `"I-PER"`: a one-letter prefix, a `-`, and the
//! entity type (everything after the first `-`, so `"B-PER-X"` has type `"PER-X"`). A tag
//! whose prefix is not one of the recognised letters (for example the word-piece tag `"X"`
//! or `"[CLS]"`) is treated as `"O"`.
//!
//! Papers chunk tag sequences in one of two ways, selected with [`ChunkMode`]:
//!
//! * [`ChunkMode::Strict`] — seqeval with `mode="strict", scheme=IOB2`
//!   ([`extract_entities`]). An entity begins only at `B-X` and continues over the directly
//!   following `I-X` of the same type. An `I-X` that does not continue a `B-X`/`I-X` of the
//!   same type is **not** part of any entity. `E-`/`S-` prefixes are not IOB2 and are treated
//!   as `O` (seqeval would raise an error).
//! * [`ChunkMode::Conlleval`] — the CoNLL `conlleval.pl` script, which is also seqeval's
//!   default mode ([`extract_entities_conlleval`]). It is lenient: an `I-X` after `O`, or after
//!   a tag of another type, *starts* a new chunk of type `X`. `E-`/`S-` (IOBES) are handled as
//!   seqeval's default mode does.
//!
//! A predicted entity counts as correct iff its type, start and end all equal those of a gold
//! entity in the same sentence. Micro scores pool the counts over all entity types;
//! per-type scores are reported for every type that occurs in the gold or the predicted
//! entities. Zero denominators give `0.0` (see [`PRF`]).

use crate::{MetricError, PRF};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// One entity span in a tag sequence.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entity {
    /// Entity type, e.g. `"PER"`.
    pub typ: String,
    /// Index of the first token.
    pub start: usize,
    /// One past the index of the last token (exclusive end).
    pub end: usize,
}

impl Entity {
    fn new(typ: &str, start: usize, end: usize) -> Self {
        Entity { typ: typ.to_string(), start, end }
    }
}

/// How tag sequences are cut into entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ChunkMode {
    /// seqeval `mode="strict", scheme=IOB2`: entities start only at `B-X`.
    #[default]
    Strict,
    /// conlleval.pl / seqeval default mode: an `I-X` that does not continue an entity of type
    /// `X` starts a new one.
    Conlleval,
}

/// Entity-level scores: micro-averaged over all types, and per type.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NerScores {
    /// Scores pooled over all entity types (the number papers report as "F1").
    pub micro: PRF,
    /// Scores per entity type, for every type present in the gold or the predictions.
    pub per_type: BTreeMap<String, PRF>,
}

impl NerScores {
    /// Macro averages `(precision, recall, f1)`: the unweighted mean of the per-type scores
    /// over every type in [`NerScores::per_type`] (seqeval's "macro avg" row). `0.0`s when
    /// there is no type.
    pub fn macro_avg(&self) -> (f64, f64, f64) {
        let n = self.per_type.len() as f64;
        let sum = |f: fn(&PRF) -> f64| crate::ratio(self.per_type.values().map(f).sum(), n);
        (sum(|s| s.precision), sum(|s| s.recall), sum(|s| s.f1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefix {
    B,
    I,
    E,
    S,
    O,
}

/// Splits a tag into its prefix and type. Unrecognised tags are `O`.
fn parse_tag(tag: &str) -> (Prefix, &str) {
    let (head, typ) = match tag.split_once('-') {
        Some((h, t)) => (h, t),
        None => (tag, ""),
    };
    let prefix = match head {
        "B" => Prefix::B,
        "I" => Prefix::I,
        "E" => Prefix::E,
        "S" => Prefix::S,
        _ => return (Prefix::O, ""),
    };
    (prefix, typ)
}

/// Extracts entities with **seqeval strict mode, IOB2 scheme** semantics.
///
/// An entity begins at `B-X` and extends over the directly following `I-X` tags of the same
/// type `X`. An `I-X` without a preceding `B-X`/`I-X` of the same type belongs to no entity —
/// so `["I-PER", "I-PER"]` has no entity here, while conlleval and seqeval's default mode
/// would see one `PER` entity `0..2` (use [`extract_entities_conlleval`] for that).
/// Tags other than `B-*`, `I-*` are treated as `O`.
///
/// Accepts `&[&str]` as well as `&[String]`.
pub fn extract_entities<S: AsRef<str>>(tags: &[S]) -> Vec<Entity> {
    let mut out = Vec::new();
    // The open entity: (type, start).
    let mut open: Option<(&str, usize)> = None;
    for (i, tag) in tags.iter().enumerate() {
        let (prefix, typ) = parse_tag(tag.as_ref());
        match prefix {
            Prefix::I if open.is_some_and(|(t, _)| t == typ) => {}
            _ => {
                if let Some((t, s)) = open.take() {
                    out.push(Entity::new(t, s, i));
                }
                if prefix == Prefix::B {
                    open = Some((typ, i));
                }
            }
        }
    }
    if let Some((t, s)) = open {
        out.push(Entity::new(t, s, tags.len()));
    }
    out
}

/// Extracts entities with **conlleval.pl** chunking (also seqeval's default mode).
///
/// Lenient: a chunk starts at any `B-X`, and also at an `I-X` that follows `O` or a tag of a
/// different type (so `["I-PER", "I-PER"]` is one `PER` entity `0..2`, and
/// `["B-PER", "I-LOC"]` is two entities). A chunk ends when the type changes, at `O`, at a
/// `B-`, after an `E-` or `S-`. For BIO input this is exactly conlleval.pl's
/// `startOfChunk`/`endOfChunk`; IOBES prefixes follow seqeval's `get_entities`.
pub fn extract_entities_conlleval<S: AsRef<str>>(tags: &[S]) -> Vec<Entity> {
    use Prefix::*;
    fn end_of_chunk(pt: Prefix, t: Prefix, ptyp: &str, typ: &str) -> bool {
        matches!(pt, E | S) || (matches!(pt, B | I) && matches!(t, B | S | O)) || (pt != O && ptyp != typ)
    }
    fn start_of_chunk(pt: Prefix, t: Prefix, ptyp: &str, typ: &str) -> bool {
        matches!(t, B | S) || (matches!(pt, E | S | O) && matches!(t, E | I)) || (t != O && ptyp != typ)
    }
    let mut out = Vec::new();
    let (mut prev, mut prev_typ) = (O, "");
    let mut begin = 0;
    // One extra "O" at the end closes the last chunk.
    for i in 0..=tags.len() {
        let (cur, typ) = match tags.get(i) {
            Some(t) => parse_tag(t.as_ref()),
            None => (O, ""),
        };
        if end_of_chunk(prev, cur, prev_typ, typ) {
            out.push(Entity::new(prev_typ, begin, i));
        }
        if start_of_chunk(prev, cur, prev_typ, typ) {
            begin = i;
        }
        prev = cur;
        prev_typ = typ;
    }
    out
}

/// Extracts entities with the chunking rules of `mode`.
pub fn extract_entities_with<S: AsRef<str>>(tags: &[S], mode: ChunkMode) -> Vec<Entity> {
    match mode {
        ChunkMode::Strict => extract_entities(tags),
        ChunkMode::Conlleval => extract_entities_conlleval(tags),
    }
}

/// Per-type counts: (correct, predicted, gold).
type Counts = BTreeMap<String, (usize, usize, usize)>;

fn count_sentence<S: AsRef<str>>(gold: &[S], pred: &[S], mode: ChunkMode, counts: &mut Counts) {
    let g = extract_entities_with(gold, mode);
    let p = extract_entities_with(pred, mode);
    let gold_set: HashSet<&Entity> = g.iter().collect();
    for e in &g {
        counts.entry(e.typ.clone()).or_default().2 += 1;
    }
    for e in &p {
        let c = counts.entry(e.typ.clone()).or_default();
        c.1 += 1;
        if gold_set.contains(e) {
            c.0 += 1;
        }
    }
}

fn finish(counts: Counts) -> NerScores {
    let (mut c, mut p, mut g) = (0, 0, 0);
    let mut per_type = BTreeMap::new();
    for (typ, (tc, tp, tg)) in counts {
        c += tc;
        p += tp;
        g += tg;
        per_type.insert(typ, PRF::from_counts(tc, tp, tg));
    }
    NerScores { micro: PRF::from_counts(c, p, g), per_type }
}

fn check_outer_len<A, B>(gold: &[A], pred: &[B]) -> Result<(), MetricError> {
    if gold.len() != pred.len() {
        return Err(MetricError::LengthMismatch { sentence: None, gold_len: gold.len(), pred_len: pred.len() });
    }
    Ok(())
}

fn check_sentence_len<A, B>(i: usize, gold: &[A], pred: &[B]) -> Result<(), MetricError> {
    if gold.len() != pred.len() {
        return Err(MetricError::LengthMismatch { sentence: Some(i), gold_len: gold.len(), pred_len: pred.len() });
    }
    Ok(())
}

/// Entity-level micro and per-type P/R/F1 of `pred` against `gold` (one tag sequence per
/// sentence).
///
/// Entities are never matched across sentences. Returns
/// [`MetricError::LengthMismatch`] if the number of sentences differs (`sentence: None`) or if
/// a sentence's two tag sequences differ in length (`sentence: Some(index)`).
///
/// With `ChunkMode::Strict` this equals seqeval's
/// `classification_report(gold, pred, mode="strict", scheme=IOB2)`; with
/// `ChunkMode::Conlleval` it equals conlleval.pl / seqeval's default `f1_score`.
pub fn ner_scores<S: AsRef<str>>(gold: &[Vec<S>], pred: &[Vec<S>], mode: ChunkMode) -> Result<NerScores, MetricError> {
    check_outer_len(gold, pred)?;
    let mut counts = Counts::new();
    for (i, (g, p)) in gold.iter().zip(pred).enumerate() {
        check_sentence_len(i, g, p)?;
        count_sentence(g, p, mode, &mut counts);
    }
    Ok(finish(counts))
}

/// The word-piece-level scorer of the MuSE reference implementation, for comparing with the
/// numbers in its logs.
///
/// Both sequences are word-piece sequences of equal length in which the continuation pieces of
/// a word carry the gold tag `"X"` (e.g. `"Wash" "##ington"` → `B-LOC X`). Every position whose
/// **gold** tag is exactly `"X"` is removed from *both* sequences — whatever was predicted
/// there — and the remaining (first-piece) tags are scored as in [`ner_scores`]. A `"X"`
/// predicted at a position whose gold tag is not `"X"` stays and is treated as `O`.
///
/// Because each word keeps exactly its first piece, this equals word-level scoring with
/// first-piece tags. Length errors are checked on the unfiltered sequences.
pub fn ner_scores_wordpiece<S: AsRef<str>>(gold: &[Vec<S>], pred: &[Vec<S>], mode: ChunkMode) -> Result<NerScores, MetricError> {
    check_outer_len(gold, pred)?;
    let mut counts = Counts::new();
    for (i, (g, p)) in gold.iter().zip(pred).enumerate() {
        check_sentence_len(i, g, p)?;
        let (gf, pf): (Vec<&str>, Vec<&str>) = g.iter().zip(p).map(|(g, p)| (g.as_ref(), p.as_ref())).filter(|(g, _)| *g != "X").unzip();
        count_sentence(&gf, &pf, mode, &mut counts);
    }
    Ok(finish(counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }
    fn ent(t: &str, a: usize, b: usize) -> Entity {
        Entity::new(t, a, b)
    }
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }
    fn assert_prf(p: &PRF, precision: f64, recall: f64, f1: f64, c: usize, pr: usize, g: usize) {
        assert!(close(p.precision, precision), "precision {} != {precision}", p.precision);
        assert!(close(p.recall, recall), "recall {} != {recall}", p.recall);
        assert!(close(p.f1, f1), "f1 {} != {f1}", p.f1);
        assert_eq!((p.correct, p.predicted, p.support), (c, pr, g));
    }

    #[test]
    fn strict_basic_extraction() {
        let tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "I-LOC"];
        assert_eq!(extract_entities(&tags), vec![ent("PER", 0, 2), ent("LOC", 3, 4), ent("LOC", 4, 7)]);
        // Works with Strings too.
        assert_eq!(extract_entities(&s(&tags)), extract_entities(&tags));
        assert_eq!(extract_entities::<&str>(&[]), vec![]);
    }

    #[test]
    fn strict_vs_lenient_on_orphan_i() {
        // Strict: no B- anywhere → no entity. Lenient: I-PER after (virtual) O starts a chunk,
        // the second I-PER continues it → PER 0..2.
        let tags = ["I-PER", "I-PER"];
        assert_eq!(extract_entities(&tags), vec![]);
        assert_eq!(extract_entities_conlleval(&tags), vec![ent("PER", 0, 2)]);
    }

    #[test]
    fn strict_vs_lenient_type_change_inside() {
        // B-PER I-LOC I-LOC O I-ORG B-ORG I-ORG
        // strict: PER 0..1 (I-LOC has another type → ends it, starts nothing);
        //         I-ORG at 4 after O → nothing; B-ORG I-ORG → ORG 5..7.
        // lenient: PER 0..1; I-LOC after PER starts LOC 1..3; I-ORG after O starts ORG 4..5;
        //          B-ORG always starts → ORG 5..7.
        let tags = ["B-PER", "I-LOC", "I-LOC", "O", "I-ORG", "B-ORG", "I-ORG"];
        assert_eq!(extract_entities(&tags), vec![ent("PER", 0, 1), ent("ORG", 5, 7)]);
        assert_eq!(extract_entities_conlleval(&tags), vec![ent("PER", 0, 1), ent("LOC", 1, 3), ent("ORG", 4, 5), ent("ORG", 5, 7)]);
    }

    #[test]
    fn unknown_tags_are_outside() {
        // "X" and "[CLS]" are not B/I tags → O in both modes.
        let tags = ["[CLS]", "B-PER", "X", "I-PER", "O"];
        assert_eq!(extract_entities(&tags), vec![ent("PER", 1, 2)]);
        // lenient: PER 1..2 closed by X(=O); I-PER after O starts PER 3..4.
        assert_eq!(extract_entities_conlleval(&tags), vec![ent("PER", 1, 2), ent("PER", 3, 4)]);
    }

    #[test]
    fn lenient_iobes() {
        // S-PER B-LOC E-LOC B-ORG I-ORG E-ORG  → PER 0..1, LOC 1..3, ORG 3..6
        let tags = ["S-PER", "B-LOC", "E-LOC", "B-ORG", "I-ORG", "E-ORG"];
        assert_eq!(extract_entities_conlleval(&tags), vec![ent("PER", 0, 1), ent("LOC", 1, 3), ent("ORG", 3, 6)]);
    }

    #[test]
    fn wrong_type_counts_half() {
        // gold: PER 0..2, LOC 3..4   pred: PER 0..2, ORG 3..4
        // correct = 1 (PER), predicted = 2, gold = 2 → P = R = F1 = 1/2.
        let gold = vec![s(&["B-PER", "I-PER", "O", "B-LOC"])];
        let pred = vec![s(&["B-PER", "I-PER", "O", "B-ORG"])];
        for mode in [ChunkMode::Strict, ChunkMode::Conlleval] {
            let sc = ner_scores(&gold, &pred, mode).unwrap();
            assert_prf(&sc.micro, 0.5, 0.5, 0.5, 1, 2, 2);
            // per type: PER 1/1/1 → 1,1,1; LOC gold 1, pred 0 → 0,0,0; ORG pred 1 gold 0 → 0,0,0
            assert_prf(&sc.per_type["PER"], 1.0, 1.0, 1.0, 1, 1, 1);
            assert_prf(&sc.per_type["LOC"], 0.0, 0.0, 0.0, 0, 0, 1);
            assert_prf(&sc.per_type["ORG"], 0.0, 0.0, 0.0, 0, 1, 0);
        }
    }

    #[test]
    fn split_entity_is_wrong() {
        // gold B-PER I-PER → PER 0..2; pred B-PER B-PER → PER 0..1, PER 1..2.
        // correct 0, predicted 2, gold 1 → P = R = F1 = 0.
        let gold = vec![s(&["B-PER", "I-PER"])];
        let pred = vec![s(&["B-PER", "B-PER"])];
        let sc = ner_scores(&gold, &pred, ChunkMode::Strict).unwrap();
        assert_prf(&sc.micro, 0.0, 0.0, 0.0, 0, 2, 1);
    }

    #[test]
    fn strict_vs_lenient_scores_differ() {
        // gold: B-PER I-PER → PER 0..2.   pred: I-PER I-PER
        // strict: pred has no entity → correct 0, predicted 0, gold 1 → all 0.
        // lenient: pred PER 0..2 matches → 1/1/1 → all 1.
        let gold = vec![s(&["B-PER", "I-PER"])];
        let pred = vec![s(&["I-PER", "I-PER"])];
        let st = ner_scores(&gold, &pred, ChunkMode::Strict).unwrap();
        assert_prf(&st.micro, 0.0, 0.0, 0.0, 0, 0, 1);
        let le = ner_scores(&gold, &pred, ChunkMode::Conlleval).unwrap();
        assert_prf(&le.micro, 1.0, 1.0, 1.0, 1, 1, 1);
    }

    #[test]
    fn three_sentences_per_type() {
        // s0 gold: B-PER I-PER O B-LOC        → PER(0,2) LOC(3,4)
        //    pred: B-PER I-PER O B-LOC        → PER(0,2) LOC(3,4)       ✓✓
        // s1 gold: B-ORG I-ORG I-ORG O B-PER  → ORG(0,3) PER(4,5)
        //    pred: B-ORG I-ORG O O B-PER      → ORG(0,2) ✗, PER(4,5) ✓
        // s2 gold: O B-LOC O B-MISC           → LOC(1,2) MISC(3,4)
        //    pred: B-PER B-LOC O O            → PER(0,1) ✗, LOC(1,2) ✓
        // PER : gold 2, pred 3, correct 2 → P 2/3, R 1, F1 4/5
        // LOC : gold 2, pred 2, correct 2 → 1, 1, 1
        // ORG : gold 1, pred 1, correct 0 → 0, 0, 0
        // MISC: gold 1, pred 0, correct 0 → 0, 0, 0
        // micro: gold 6, pred 6, correct 4 → P = R = F1 = 2/3
        let gold = vec![s(&["B-PER", "I-PER", "O", "B-LOC"]), s(&["B-ORG", "I-ORG", "I-ORG", "O", "B-PER"]), s(&["O", "B-LOC", "O", "B-MISC"])];
        let pred = vec![s(&["B-PER", "I-PER", "O", "B-LOC"]), s(&["B-ORG", "I-ORG", "O", "O", "B-PER"]), s(&["B-PER", "B-LOC", "O", "O"])];
        let sc = ner_scores(&gold, &pred, ChunkMode::Strict).unwrap();
        assert_prf(&sc.micro, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 4, 6, 6);
        assert_prf(&sc.per_type["PER"], 2.0 / 3.0, 1.0, 0.8, 2, 3, 2);
        assert_prf(&sc.per_type["LOC"], 1.0, 1.0, 1.0, 2, 2, 2);
        assert_prf(&sc.per_type["ORG"], 0.0, 0.0, 0.0, 0, 1, 1);
        assert_prf(&sc.per_type["MISC"], 0.0, 0.0, 0.0, 0, 0, 1);
        assert_eq!(sc.per_type.len(), 4);
        // macro: P = (2/3 + 1 + 0 + 0)/4 = 5/12, R = (1 + 1 + 0 + 0)/4 = 1/2,
        //        F1 = (0.8 + 1 + 0 + 0)/4 = 0.45   (seqeval "macro avg" row agrees)
        let (mp, mr, mf) = sc.macro_avg();
        assert!(close(mp, 5.0 / 12.0) && close(mr, 0.5) && close(mf, 0.45));
        // All BIO-valid → lenient gives the same numbers.
        assert_eq!(ner_scores(&gold, &pred, ChunkMode::Conlleval).unwrap(), sc);
    }

    #[test]
    fn empty_predictions() {
        // gold has 2 entities, pred none → P = 0 (0/0 convention), R = 0/2 = 0, F1 = 0.
        let gold = vec![s(&["B-PER", "O", "B-LOC"])];
        let pred = vec![s(&["O", "O", "O"])];
        let sc = ner_scores(&gold, &pred, ChunkMode::Strict).unwrap();
        assert_prf(&sc.micro, 0.0, 0.0, 0.0, 0, 0, 2);
        assert!(!sc.micro.f1.is_nan());
        // No sentences at all.
        let sc = ner_scores::<String>(&[], &[], ChunkMode::Strict).unwrap();
        assert_prf(&sc.micro, 0.0, 0.0, 0.0, 0, 0, 0);
        assert!(sc.per_type.is_empty());
        assert_eq!(sc.macro_avg(), (0.0, 0.0, 0.0));
    }

    #[test]
    fn entities_do_not_cross_sentences() {
        // Sentence 0 ends in B-PER, sentence 1 starts with I-PER. Lenient: PER(0,1) in s0 and
        // PER(0,1) in s1 for both gold and pred — matched within their own sentence → 2/2/2.
        // If sentences were concatenated the lenient chunker would merge them into one entity.
        let gold = vec![s(&["O", "B-PER"]), s(&["I-PER", "O"])];
        let pred = vec![s(&["O", "B-PER"]), s(&["O", "O"])];
        let sc = ner_scores(&gold, &pred, ChunkMode::Conlleval).unwrap();
        // gold: s0 PER(1,2), s1 PER(0,1) → 2; pred: s0 PER(1,2) → 1 correct
        assert_prf(&sc.micro, 1.0, 0.5, 2.0 / 3.0, 1, 1, 2);
    }

    #[test]
    fn length_errors_name_sentence() {
        let gold = vec![s(&["O"]), s(&["B-PER", "O"])];
        let pred = vec![s(&["O"]), s(&["B-PER"])];
        let e = ner_scores(&gold, &pred, ChunkMode::Strict).unwrap_err();
        assert_eq!(e, MetricError::LengthMismatch { sentence: Some(1), gold_len: 2, pred_len: 1 });
        assert!(e.to_string().contains("sentence 1"));
        let e = ner_scores(&gold, &pred[..1], ChunkMode::Strict).unwrap_err();
        assert_eq!(e, MetricError::LengthMismatch { sentence: None, gold_len: 2, pred_len: 1 });
        let e = ner_scores_wordpiece(&gold, &pred, ChunkMode::Strict).unwrap_err();
        assert!(matches!(e, MetricError::LengthMismatch { sentence: Some(1), .. }));
    }

    #[test]
    fn wordpiece_drops_gold_x_positions() {
        // pieces:  Wash ##ington is in New York ##er
        // gold:    B-LOC X       O  O  B-LOC I-LOC X
        // pred:    B-LOC I-LOC   O  O  B-LOC O     B-PER
        // After dropping gold-X positions (1 and 6):
        // gold: B-LOC O O B-LOC I-LOC → LOC(0,1) LOC(3,5)
        // pred: B-LOC O O B-LOC O     → LOC(0,1) ✓, LOC(3,4) ✗
        // correct 1, predicted 2, gold 2 → P = R = F1 = 0.5.
        // (The I-LOC / B-PER predicted on continuation pieces are ignored.)
        let gold = vec![s(&["B-LOC", "X", "O", "O", "B-LOC", "I-LOC", "X"])];
        let pred = vec![s(&["B-LOC", "I-LOC", "O", "O", "B-LOC", "O", "B-PER"])];
        let sc = ner_scores_wordpiece(&gold, &pred, ChunkMode::Strict).unwrap();
        assert_prf(&sc.micro, 0.5, 0.5, 0.5, 1, 2, 2);
        assert!(!sc.per_type.contains_key("PER"));
        // Without dropping, the X in gold would split things differently: gold LOC(0,1)
        // LOC(4,6); pred LOC(0,2) LOC(4,5) PER(6,7) → 0 correct.
        let plain = ner_scores(&gold, &pred, ChunkMode::Strict).unwrap();
        assert_prf(&plain.micro, 0.0, 0.0, 0.0, 0, 3, 2);
    }

    #[test]
    fn scores_serialize() {
        let gold = vec![s(&["B-PER"])];
        let sc = ner_scores(&gold, &gold, ChunkMode::Strict).unwrap();
        let j = serde_json::to_string(&sc).unwrap();
        assert!(j.contains("\"PER\""));
        let back: NerScores = serde_json::from_str(&j).unwrap();
        assert_eq!(back, sc);
    }
}
