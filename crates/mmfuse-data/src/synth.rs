//! The synthetic corpus (`mmfuse synth`): deterministic from a seed, written in the same
//! formats as the real corpora (Twitter CoNLL + images for NER; JSONL + images for
//! classification), with labels that need BOTH modalities.
//!
//! # Generative rules
//!
//! **Images** (`image_size`² RGB PNG): a filled shape — circle, square, triangle or cross — of
//! one colour — red, green, blue or yellow (±20 per channel jitter) — whose size is 50–80 % of
//! the image, at a random position where it fits, on a dark background with uniform per-pixel
//! noise (±15). Shape and colour are drawn independently and uniformly.
//!
//! **NER** (`ner/`): one of 20 neutral sentence templates, with neutral filler words, containing
//! exactly one entity: a made-up name of 1–2 capitalised tokens of random syllables (drawn
//! afresh for every post, so the name carries no information about its type). The entity type
//! is given only by the image's **shape**: circle → PER, square → LOC, triangle → ORG,
//! cross → MISC (colour is random). Tags are BIO. Best reachable entity-level F1: text only
//! ≈ 25 % (the span is findable, the type is a 1-in-4 guess), image only ≈ 0 (the type is
//! known but not the span), fused 100 %.
//!
//! **Classification** (`cls/`): a template carrying the text's polarity through one of 15
//! positive or 15 negative words; the image's **colour** carries its mood: green or yellow =
//! positive, red or blue = negative (shape random). Text and image polarity are independent and
//! uniform. Label = `positive` if both are positive, `negative` if both are negative,
//! `sarcastic` if they disagree (so 25 / 25 / 50 %). Best reachable accuracy: text only 50 %
//! (given the text, the label is one of two equally likely), image only 50 %, majority class
//! 50 %, fused 100 %.
//!
//! `label_noise` replaces that fraction of labels (NER: entity types; classification: labels)
//! by a uniformly drawn other label, lowering every optimum accordingly.

use crate::cls::{ClsSample, write_jsonl};
use crate::conll::{NerSample, write_conll};
use crate::error::{DataError, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

/// Generator settings.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    pub seed: u64,
    pub n_train: usize,
    pub n_dev: usize,
    pub n_test: usize,
    pub image_size: u32,
    pub label_noise: f32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self { seed: 42, n_train: 3000, n_dev: 500, n_test: 1000, image_size: 32, label_noise: 0.0 }
    }
}

/// What was written.
#[derive(Clone, Debug)]
pub struct SynthSummary {
    pub ner_samples: usize,
    pub cls_samples: usize,
    pub images: usize,
}

/// Shapes, in the order of the NER types they stand for.
pub const SHAPES: [&str; 4] = ["circle", "square", "triangle", "cross"];
/// NER type shown by each shape.
pub const SHAPE_TYPES: [&str; 4] = ["PER", "LOC", "ORG", "MISC"];
/// Colours; the first two are "positive" moods.
pub const COLOURS: [&str; 4] = ["green", "yellow", "red", "blue"];
const RGB: [[u8; 3]; 4] = [[40, 200, 60], [230, 210, 40], [220, 40, 40], [50, 80, 230]];

const NER_TEMPLATES: [&str; 20] = [
    "i met {E} at the {P} {T}",
    "{E} was all over the news {T}",
    "just saw {E} near the {P}",
    "can not believe {E} said that {T}",
    "photo of {E} from the {P}",
    "{E} is trending again {T}",
    "we talked about {E} at the {P}",
    "anyone else following {E} {T} ?",
    "heading to the {P} to see {E}",
    "{E} posted this {T}",
    "so this is {E} , right ?",
    "nobody expected {E} at the {P}",
    "rt : {E} shared a picture {T}",
    "new update from {E} {T}",
    "waiting for {E} outside the {P}",
    "they mentioned {E} twice {T}",
    "look who showed up : {E}",
    "throwback to {E} at the {P}",
    "{E} again ? {T} was long",
    "thoughts on {E} ?",
];
const PLACES: [&str; 8] = ["station", "market", "corner", "park", "office", "bridge", "hall", "cafe"];
const TIMES: [&str; 6] = ["today", "yesterday", "tonight", "this morning", "last week", "again"];
const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "zu", "ter", "van", "bri", "dol", "fen", "gar", "hul", "jin", "kor", "lem", "nax", "pol", "quin", "ras", "sel", "tov", "ulm", "wex",
    "yar", "zed",
];
const POSITIVE: [&str; 15] = [
    "great", "wonderful", "amazing", "lovely", "fantastic", "brilliant", "awesome", "perfect", "delightful", "superb", "excellent", "beautiful", "happy",
    "glorious", "cheerful",
];
const NEGATIVE: [&str; 15] = [
    "terrible", "awful", "horrible", "dreadful", "miserable", "gloomy", "nasty", "disappointing", "lousy", "bleak", "sad", "tragic", "grim", "annoying",
    "depressing",
];
const CLS_TEMPLATES: [&str; 8] = [
    "what a {A} day",
    "this is {A}",
    "feeling {A} about the {P}",
    "so {A} right now",
    "the {P} looks {A} {T}",
    "honestly {A} {T}",
    "such a {A} view from the {P}",
    "{T} was {A}",
];

/// The image of a sample: shape and colour indices.
#[derive(Clone, Copy, Debug)]
struct Picture {
    shape: usize,
    colour: usize,
    seed: u64,
}

fn render(p: Picture, size: u32) -> image::RgbImage {
    let mut rng = StdRng::seed_from_u64(p.seed);
    let s = size as f32;
    let r = s * rng.random_range(0.25..0.40);
    let cx = rng.random_range(r..=s - r);
    let cy = rng.random_range(r..=s - r);
    let base = RGB[p.colour];
    let col: [u8; 3] = std::array::from_fn(|c| (base[c] as i32 + rng.random_range(-20..=20)).clamp(0, 255) as u8);
    image::RgbImage::from_fn(size, size, |x, y| {
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        let inside = match p.shape {
            0 => dx * dx + dy * dy <= r * r,
            1 => dx.abs() <= 0.85 * r && dy.abs() <= 0.85 * r,
            2 => dy >= -r && dy <= r && dx.abs() <= (dy + r) / 2.0,
            _ => (dx.abs() <= r / 3.0 && dy.abs() <= r) || (dy.abs() <= r / 3.0 && dx.abs() <= r),
        };
        let noise: i32 = rng.random_range(-15..=15);
        let px: [u8; 3] = if inside { col } else { [40, 40, 45] };
        image::Rgb(std::array::from_fn(|c| (px[c] as i32 + noise).clamp(0, 255) as u8))
    })
}

fn fill(template: &str, rng: &mut StdRng, adj: Option<&str>) -> String {
    let mut out = template.to_string();
    if out.contains("{P}") {
        out = out.replace("{P}", PLACES[rng.random_range(0..PLACES.len())]);
    }
    if out.contains("{T}") {
        out = out.replace("{T}", TIMES[rng.random_range(0..TIMES.len())]);
    }
    if let Some(a) = adj {
        out = out.replace("{A}", a);
    }
    out
}

fn name(rng: &mut StdRng) -> Vec<String> {
    let n_tokens = if rng.random_bool(0.4) { 2 } else { 1 };
    (0..n_tokens)
        .map(|_| {
            let n_syll = rng.random_range(2..=3);
            let w: String = (0..n_syll).map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())]).collect();
            let mut c = w.chars();
            let first = c.next().expect("non-empty").to_ascii_uppercase();
            std::iter::once(first).chain(c).collect()
        })
        .collect()
}

fn other(rng: &mut StdRng, n: usize, not: usize) -> usize {
    let k = rng.random_range(0..n - 1);
    if k >= not { k + 1 } else { k }
}

fn write_images(dir: &Path, items: &[(String, Picture)], size: u32) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || -> Result<()> {
                    for (id, p) in c {
                        let path: PathBuf = dir.join(format!("{id}.png"));
                        render(*p, size).save(&path).map_err(|e| DataError::Image { path: path.clone(), reason: e.to_string() })?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().unwrap_or_else(|_| Err(DataError::Other("image writer thread panicked".into()))))
    })
}

/// Write the corpus under `out_dir` (see the module docs for the layout and the rules).
pub fn generate(out_dir: &Path, cfg: &SynthConfig) -> Result<SynthSummary> {
    let splits = [("train", cfg.n_train), ("valid", cfg.n_dev), ("test", cfg.n_test)];
    let ner_dir = out_dir.join("ner");
    let cls_dir = out_dir.join("cls");
    for d in [&ner_dir, &cls_dir] {
        std::fs::create_dir_all(d).map_err(|e| DataError::io(d, e))?;
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut ner_pics = Vec::new();
    let mut cls_pics = Vec::new();
    let mut next_id = 100_000usize;
    let mut summary = SynthSummary { ner_samples: 0, cls_samples: 0, images: 0 };
    for (split, n) in splits {
        // NER
        let mut ner = Vec::with_capacity(n);
        for _ in 0..n {
            let id = next_id.to_string();
            next_id += 1;
            let shape = rng.random_range(0..4);
            let pic = Picture { shape, colour: rng.random_range(0..4), seed: rng.random() };
            let mut typ = shape;
            if cfg.label_noise > 0.0 && rng.random::<f32>() < cfg.label_noise {
                typ = other(&mut rng, 4, shape);
            }
            let template = NER_TEMPLATES[rng.random_range(0..NER_TEMPLATES.len())];
            let text = fill(template, &mut rng, None);
            let ent = name(&mut rng);
            let mut words = Vec::new();
            let mut tags = Vec::new();
            for w in text.split_whitespace() {
                if w == "{E}" {
                    for (k, e) in ent.iter().enumerate() {
                        words.push(e.clone());
                        tags.push(format!("{}-{}", if k == 0 { "B" } else { "I" }, SHAPE_TYPES[typ]));
                    }
                } else {
                    words.push(w.to_string());
                    tags.push("O".to_string());
                }
            }
            ner.push(NerSample { id: id.clone(), words, tags, line: 0 });
            ner_pics.push((id, pic));
        }
        write_conll(&ner_dir.join(format!("{split}.txt")), &ner)?;
        summary.ner_samples += ner.len();
        // classification
        let mut cls = Vec::with_capacity(n);
        for _ in 0..n {
            let id = next_id.to_string();
            next_id += 1;
            let text_pos = rng.random_bool(0.5);
            let image_pos = rng.random_bool(0.5);
            let colour = if image_pos { rng.random_range(0..2) } else { rng.random_range(2..4) };
            let pic = Picture { shape: rng.random_range(0..4), colour, seed: rng.random() };
            let adj = if text_pos { POSITIVE[rng.random_range(0..POSITIVE.len())] } else { NEGATIVE[rng.random_range(0..NEGATIVE.len())] };
            let text = fill(CLS_TEMPLATES[rng.random_range(0..CLS_TEMPLATES.len())], &mut rng, Some(adj));
            let labels = ["positive", "negative", "sarcastic"];
            let mut label = match (text_pos, image_pos) {
                (true, true) => 0,
                (false, false) => 1,
                _ => 2,
            };
            if cfg.label_noise > 0.0 && rng.random::<f32>() < cfg.label_noise {
                label = other(&mut rng, 3, label);
            }
            cls.push(ClsSample { id: id.clone(), text, image: Some(format!("images/{id}.png")), label: labels[label].to_string(), line: 0 });
            cls_pics.push((id, pic));
        }
        let cls_split = if split == "valid" { "dev" } else { split };
        write_jsonl(&cls_dir.join(format!("{cls_split}.jsonl")), &cls)?;
        summary.cls_samples += cls.len();
    }
    write_images(&ner_dir.join("images"), &ner_pics, cfg.image_size)?;
    write_images(&cls_dir.join("images"), &cls_pics, cfg.image_size)?;
    summary.images = ner_pics.len() + cls_pics.len();
    let readme = format!(
        "# mmfuse synthetic corpus\n\nGenerated by `mmfuse synth` with seed {}, {} / {} / {} samples per task, images {}x{}, label noise {}.\n\n\
         - `ner/{{train,valid,test}}.txt`: Twitter-style CoNLL (`IMGID:<id>`, `token<TAB>tag`), images `ner/images/<id>.png`.\n\
         - `cls/{{train,dev,test}}.jsonl`: `{{\"id\", \"text\", \"image\", \"label\"}}`, images `cls/images/<id>.png`.\n\n\
         ## Rules\n\n\
         - NER: one made-up name per sentence (random syllables); its type is shown only by the image's shape: circle = PER, square = LOC, triangle = ORG, cross = MISC.\n\
           Best entity F1: text only ~25 %, image only ~0 %, fused 100 %.\n\
         - Classification: text polarity (positive/negative adjective) x image mood (green, yellow = positive; red, blue = negative).\n\
           Label positive / negative when they agree, sarcastic when they disagree (25/25/50 %).\n\
           Best accuracy: text only 50 %, image only 50 %, fused 100 %.\n",
        cfg.seed, cfg.n_train, cfg.n_dev, cfg.n_test, cfg.image_size, cfg.image_size, cfg.label_noise
    );
    std::fs::write(out_dir.join("README.md"), readme).map_err(|e| DataError::io(out_dir.join("README.md"), e))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cls::read_jsonl;
    use crate::conll::{ConllOptions, read_conll};

    fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn deterministic_readable_and_follows_the_rules() {
        let base = std::env::temp_dir().join(format!("mmfuse-synth-{}", std::process::id()));
        let cfg = SynthConfig { seed: 5, n_train: 60, n_dev: 10, n_test: 10, ..Default::default() };
        generate(&base.join("a"), &cfg).unwrap();
        generate(&base.join("b"), &cfg).unwrap();
        let (fa, fb) = (files(&base.join("a")), files(&base.join("b")));
        assert_eq!(fa.len(), 2 * 80 + 6 + 1);
        assert!(fa == fb, "same seed must give byte-identical files");
        // the real readers accept it; labels follow the rules
        let (ner, _) = read_conll(&base.join("a/ner/train.txt"), &ConllOptions::default()).unwrap();
        assert_eq!(ner.len(), 60);
        for s in &ner {
            let ents = s.tags.iter().filter(|t| t.starts_with("B-")).count();
            assert_eq!(ents, 1, "{s:?}");
            let img = image::open(base.join(format!("a/ner/images/{}.png", s.id))).unwrap();
            assert_eq!(img.width(), 32);
        }
        let (cls, _) = read_jsonl(&base.join("a/cls/train.jsonl")).unwrap();
        assert_eq!(cls.len(), 60);
        for s in &cls {
            let text_pos = POSITIVE.iter().any(|w| s.text.split_whitespace().any(|t| t == *w));
            let text_neg = NEGATIVE.iter().any(|w| s.text.split_whitespace().any(|t| t == *w));
            assert!(text_pos ^ text_neg, "{}", s.text);
            let img = image::open(base.join("a/cls").join(s.image.as_ref().unwrap())).unwrap().to_rgb8();
            // the shape's colour is the most saturated pixel colour: green/yellow have G > B + 80
            let bright = img.pixels().max_by_key(|p| p[0] as i32 + p[1] as i32 + p[2] as i32 - 3 * (p[0].min(p[1]).min(p[2]) as i32)).unwrap();
            let image_pos = bright[1] as i32 > bright[2] as i32 + 60;
            let expect = match (text_pos, image_pos) {
                (true, true) => "positive",
                (false, false) => "negative",
                _ => "sarcastic",
            };
            assert_eq!(s.label, expect, "{} / pixel {bright:?}", s.text);
        }
        let _ = std::fs::remove_dir_all(&base);
    }
}
