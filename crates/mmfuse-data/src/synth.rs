#![doc = include_str!("synth_rules.md")]

use crate::cls::{ClsSample, write_jsonl};
use crate::conll::{NerSample, write_conll};
use crate::error::{DataError, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

/// Generator settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    /// Everything is drawn from `StdRng::seed_from_u64(seed)`.
    pub seed: u64,
    /// Samples per task in the train, dev (`valid.txt` / `dev.jsonl`) and test splits.
    pub n_train: usize,
    pub n_dev: usize,
    pub n_test: usize,
    /// Side of the square PNG images (at least 8; default 32).
    pub image_size: u32,
    /// Fraction ε of labels replaced by a random other label (0..=0.5; default 0).
    pub label_noise: f32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self { seed: 42, n_train: 3000, n_dev: 500, n_test: 1000, image_size: 32, label_noise: 0.0 }
    }
}

/// What was written.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthSummary {
    /// NER posts over all splits.
    pub ner_samples: usize,
    /// Classification samples over all splits.
    pub cls_samples: usize,
    /// PNG files written (one per sample).
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
/// Neutral words padding NER sentences: `k` of [`LEAD`] before and `FILLERS - k` of [`TRAIL`]
/// after, `k` uniform in `0..=FILLERS`.
const FILLERS: usize = 9;
const LEAD: [&str; 8] = ["ok", "so", "well", "hmm", "anyway", "btw", "um", "yo"];
const TRAIL: [&str; 8] = ["lol", "haha", "tbh", "ok", "!", "...", "#news", "#tbt"];
const PLACES: [&str; 8] = ["station", "market", "corner", "park", "office", "bridge", "hall", "cafe"];
const TIMES: [&str; 6] = ["today", "yesterday", "tonight", "this morning", "last week", "again"];
const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "zu", "ter", "van", "bri", "dol", "fen", "gar", "hul", "jin", "kor", "lem", "nax", "pol", "quin", "ras", "sel", "tov", "ulm", "wex",
    "yar", "zed",
];
const POSITIVE: [&str; 15] = [
    "great",
    "wonderful",
    "amazing",
    "lovely",
    "fantastic",
    "brilliant",
    "awesome",
    "perfect",
    "delightful",
    "superb",
    "excellent",
    "beautiful",
    "happy",
    "glorious",
    "cheerful",
];
const NEGATIVE: [&str; 15] = [
    "terrible",
    "awful",
    "horrible",
    "dreadful",
    "miserable",
    "gloomy",
    "nasty",
    "disappointing",
    "lousy",
    "bleak",
    "sad",
    "tragic",
    "grim",
    "annoying",
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
            1 => dx.abs() <= r && dy.abs() <= r,
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
            // syllables are ASCII: upper-case the first letter
            let (head, tail) = w.split_at(1);
            head.to_ascii_uppercase() + tail
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

/// The corpus README: the rules, then the optima for this corpus's label noise.
fn readme(cfg: &SynthConfig) -> String {
    let e = cfg.label_noise as f64;
    let pct = |x: f64| format!("{:.1} %", 100.0 * x);
    format!(
        "# mmfuse synthetic corpus\n\nGenerated by `mmfuse synth` (mmfuse-data {}) with seed {}, {} / {} / {} samples per task \
         (train / dev / test), images {}x{}, label noise ε = {}.\n\n\
         For this corpus: classification accuracy, majority class {}, text only {}, image only {}, fused {}; \
         NER entity F1, text only {}, image only 0 % (at most {} from word positions), fused {}.\n\n{}",
        env!("CARGO_PKG_VERSION"),
        cfg.seed,
        cfg.n_train,
        cfg.n_dev,
        cfg.n_test,
        cfg.image_size,
        cfg.image_size,
        cfg.label_noise,
        pct(0.5 - e / 4.0),
        pct(0.5 - e / 4.0),
        pct(0.5 - e / 4.0),
        pct(1.0 - e),
        pct(0.25),
        pct(0.132 * (1.0 - e)),
        pct(1.0 - e),
        include_str!("synth_rules.md")
    )
}

/// Write the corpus under `out_dir` (see the module docs for the layout and the rules);
/// existing files of the same names are overwritten. Fails on an `image_size` below 8 or a
/// `label_noise` outside 0..=0.5.
pub fn generate(out_dir: &Path, cfg: &SynthConfig) -> Result<SynthSummary> {
    if cfg.image_size < 8 {
        return Err(DataError::Other(format!("synth: image size {} is too small (at least 8)", cfg.image_size)));
    }
    if !(0.0..=0.5).contains(&cfg.label_noise) {
        return Err(DataError::Other(format!("synth: label noise {} is outside 0..=0.5", cfg.label_noise)));
    }
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
            let lead = rng.random_range(0..=FILLERS);
            let mut words = Vec::new();
            let mut tags = Vec::new();
            let mut push = |w: &str, t: String| {
                words.push(w.to_string());
                tags.push(t);
            };
            for _ in 0..lead {
                push(LEAD[rng.random_range(0..LEAD.len())], "O".into());
            }
            for w in text.split_whitespace() {
                if w == "{E}" {
                    for (k, e) in ent.iter().enumerate() {
                        push(e, format!("{}-{}", if k == 0 { "B" } else { "I" }, SHAPE_TYPES[typ]));
                    }
                } else {
                    push(w, "O".into());
                }
            }
            for _ in lead..FILLERS {
                push(TRAIL[rng.random_range(0..TRAIL.len())], "O".into());
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
            cls.push(ClsSample { id: id.clone(), text, image: Some(format!("images/{id}.png")), label: labels[label].to_string(), ocr: None, line: 0 });
            cls_pics.push((id, pic));
        }
        let cls_split = if split == "valid" { "dev" } else { split };
        write_jsonl(&cls_dir.join(format!("{cls_split}.jsonl")), &cls)?;
        summary.cls_samples += cls.len();
    }
    write_images(&ner_dir.join("images"), &ner_pics, cfg.image_size)?;
    write_images(&cls_dir.join("images"), &cls_pics, cfg.image_size)?;
    summary.images = ner_pics.len() + cls_pics.len();
    let readme_path = out_dir.join("README.md");
    std::fs::write(&readme_path, readme(cfg)).map_err(|e| DataError::io(&readme_path, e))?;
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

    /// Shape (index into [`SHAPES`]) and mood (true = positive colour) read back from a PNG by
    /// simple pixel statistics, to check the rules from the files alone.
    fn inspect(path: &Path) -> (usize, bool) {
        let img = image::open(path).unwrap().to_rgb8();
        let bg = [40i32, 40, 45];
        let on = |x: u32, y: u32| {
            let p = img.get_pixel(x, y);
            (0..3).map(|c| (p[c] as i32 - bg[c]).abs()).sum::<i32>() > 100
        };
        let (w, h) = img.dimensions();
        let (mut x0, mut y0, mut x1, mut y1, mut n) = (w, h, 0, 0, 0u32);
        let mut sum = [0u64; 3];
        for y in 0..h {
            for x in 0..w {
                if on(x, y) {
                    (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                    n += 1;
                    let p = img.get_pixel(x, y);
                    (0..3).for_each(|c| sum[c] += p[c] as u64);
                }
            }
        }
        assert!(n > 0, "{}: no shape", path.display());
        let (bw, bh) = (x1 - x0 + 1, y1 - y0 + 1);
        assert!(bw >= w / 2 - 1 && bh >= h / 2 - 1, "{}: shape {bw}x{bh} too small", path.display());
        let fill = n as f32 / (bw * bh) as f32;
        let bottom = (x0..=x1).filter(|&x| on(x, y1)).count() as f32 / bw as f32;
        let shape = if fill > 0.92 {
            1
        } else if fill > 0.68 {
            0
        } else if bottom > 0.8 {
            2
        } else {
            3
        };
        let mean: Vec<u64> = sum.iter().map(|s| s / n as u64).collect();
        (shape, mean[1] > mean[2] + 60)
    }

    #[test]
    fn deterministic_readable_and_follows_the_rules() {
        let base = std::env::temp_dir().join(format!("mmfuse-synth-{}", std::process::id()));
        let cfg = SynthConfig { seed: 5, n_train: 300, n_dev: 10, n_test: 10, image_size: 48, ..Default::default() };
        let summary = generate(&base.join("a"), &cfg).unwrap();
        assert_eq!(summary, SynthSummary { ner_samples: 320, cls_samples: 320, images: 640 });
        generate(&base.join("b"), &cfg).unwrap();
        let (fa, fb) = (files(&base.join("a")), files(&base.join("b")));
        assert_eq!(fa.len(), 640 + 6 + 1);
        assert!(fa == fb, "same seed must give byte-identical files");
        let other = generate(&base.join("c"), &SynthConfig { seed: 6, ..cfg.clone() }).map(|_| files(&base.join("c"))).unwrap();
        assert!(other != fa, "another seed gives another corpus");
        let readme = String::from_utf8(fa.iter().find(|(p, _)| p == Path::new("README.md")).unwrap().1.clone()).unwrap();
        assert!(readme.contains("text only 50.0 %") && readme.contains("circle → PER"), "{readme}");

        // NER: the real reader accepts it; one capitalised entity per post; type = shape
        let (ner, _) = read_conll(&base.join("a/ner/train.txt"), &ConllOptions::default()).unwrap();
        assert_eq!(ner.len(), 300);
        let mut ids = std::collections::HashSet::new();
        let mut type_counts = [0usize; 4];
        for s in &ner {
            assert!(s.id.parse::<u64>().is_ok() && ids.insert(s.id.clone()), "id {}", s.id);
            let b: Vec<usize> = (0..s.tags.len()).filter(|&i| s.tags[i].starts_with("B-")).collect();
            assert_eq!(b.len(), 1, "{s:?}");
            let typ = &s.tags[b[0]][2..];
            for (w, t) in s.words.iter().zip(&s.tags) {
                let capital = w.starts_with(|c: char| c.is_ascii_uppercase());
                assert_eq!(capital, t != "O", "{s:?}");
                assert!(t == "O" || &t[2..] == typ);
            }
            let (shape, _) = inspect(&base.join(format!("a/ner/images/{}.png", s.id)));
            assert_eq!(SHAPE_TYPES[shape], typ, "post {} ({:?}): shape {}", s.id, s.words, SHAPES[shape]);
            type_counts[shape] += 1;
        }
        assert!(type_counts.iter().all(|&c| c > 50), "{type_counts:?}");

        // classification: label = f(text polarity, image mood)
        let (cls, _) = read_jsonl(&base.join("a/cls/train.jsonl")).unwrap();
        assert_eq!(cls.len(), 300);
        let mut sarcastic = 0;
        for s in &cls {
            assert!(s.id.parse::<u64>().is_ok() && ids.insert(s.id.clone()), "id {}", s.id);
            let text_pos = POSITIVE.iter().any(|w| s.text.split_whitespace().any(|t| t == *w));
            let text_neg = NEGATIVE.iter().any(|w| s.text.split_whitespace().any(|t| t == *w));
            assert!(text_pos ^ text_neg, "{}", s.text);
            assert_eq!(s.image.as_deref(), Some(format!("images/{}.png", s.id).as_str()));
            let (_, image_pos) = inspect(&base.join("a/cls").join(s.image.as_ref().unwrap()));
            let expect = match (text_pos, image_pos) {
                (true, true) => "positive",
                (false, false) => "negative",
                _ => "sarcastic",
            };
            assert_eq!(s.label, expect, "{}", s.text);
            sarcastic += (expect == "sarcastic") as usize;
        }
        assert!((120..=180).contains(&sarcastic), "{sarcastic} of 300 sarcastic");
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn label_noise_flips_the_stated_fraction() {
        let base = std::env::temp_dir().join(format!("mmfuse-synth-noise-{}", std::process::id()));
        let cfg = SynthConfig { seed: 11, n_train: 400, n_dev: 0, n_test: 0, image_size: 48, label_noise: 0.3 };
        generate(&base, &cfg).unwrap();
        let (ner, _) = read_conll(&base.join("ner/train.txt"), &ConllOptions::default()).unwrap();
        let flipped = ner
            .iter()
            .filter(|s| {
                let typ = s.tags.iter().find_map(|t| t.strip_prefix("B-")).unwrap();
                SHAPE_TYPES[inspect(&base.join(format!("ner/images/{}.png", s.id))).0] != typ
            })
            .count();
        assert!((90..=150).contains(&flipped), "{flipped} of 400 NER types flipped");
        let (cls, _) = read_jsonl(&base.join("cls/train.jsonl")).unwrap();
        let flipped = cls
            .iter()
            .filter(|s| {
                let text_pos = POSITIVE.iter().any(|w| s.text.split_whitespace().any(|t| t == *w));
                let image_pos = inspect(&base.join("cls").join(s.image.as_ref().unwrap())).1;
                let rule = if text_pos != image_pos {
                    "sarcastic"
                } else if text_pos {
                    "positive"
                } else {
                    "negative"
                };
                s.label != rule
            })
            .count();
        assert!((90..=150).contains(&flipped), "{flipped} of 400 labels flipped");
        assert!(generate(&base, &SynthConfig { label_noise: 0.7, ..cfg.clone() }).is_err());
        assert!(generate(&base, &SynthConfig { image_size: 4, ..cfg }).is_err());
        let _ = std::fs::remove_dir_all(&base);
    }

    /// Release-mode timing of the default-size corpus: `cargo test --release -p mmfuse-data
    /// synth_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn synth_timing() {
        let base = std::env::temp_dir().join(format!("mmfuse-synth-time-{}", std::process::id()));
        let cfg = SynthConfig { seed: 1, n_train: 3000, n_dev: 1000, n_test: 1000, ..Default::default() };
        let t0 = std::time::Instant::now();
        let s = generate(&base, &cfg).unwrap();
        eprintln!("synth: {s:?} in {:.2} s", t0.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(&base);
    }

    /// Best entity F1 when the predicted spans are chosen from a set of (context, span) items
    /// `(p(context), p(context and this span is the entity))`: any number of spans per sentence,
    /// the most likely first, as many as maximise F1 = 2·TP / (predicted + gold).
    fn best_f1(mut items: Vec<(f64, f64)>) -> f64 {
        items.sort_by(|a, b| (b.1 / b.0).total_cmp(&(a.1 / a.0)));
        let (mut tp, mut pred, mut best) = (0.0, 0.0, 0.0f64);
        for (m, p) in items {
            tp += p;
            pred += m;
            best = best.max(2.0 * tp / (pred + 1.0));
        }
        best
    }

    /// Exact best entity F1 of a tagger that sees the image and the word positions but no
    /// words, (a) without the sentence length, (b) with it, each (i) with one span per sentence
    /// and (ii) with the F1-optimal set of spans. Enumerates every template, filler split, time
    /// phrase and name length.
    fn position_prior_optima() -> [f64; 5] {
        use std::collections::HashMap;
        let mut joint: HashMap<(usize, usize, usize), f64> = HashMap::new(); // (L, start, len) -> p
        for t in NER_TEMPLATES {
            let t_options: &[(usize, f64)] = if t.contains("{T}") {
                let two = TIMES.iter().filter(|x| x.contains(' ')).count() as f64 / TIMES.len() as f64;
                &[(1, 1.0 - two), (2, two)]
            } else {
                &[(1, 1.0)]
            };
            for &(t_len, p_t) in t_options {
                let mut base = None;
                let mut len = 0;
                for w in t.split_whitespace() {
                    match w {
                        "{E}" => base = Some(len),
                        "{T}" => len += t_len,
                        _ => len += 1,
                    }
                }
                let base = base.expect("every template has {E}");
                for (n_len, p_n) in [(1usize, 0.6), (2, 0.4)] {
                    for k in 0..=FILLERS {
                        let l_total = len - 1 + n_len + FILLERS;
                        let p = p_t * p_n / NER_TEMPLATES.len() as f64 / (FILLERS + 1) as f64;
                        *joint.entry((l_total, k + base, n_len)).or_default() += p;
                    }
                }
            }
        }
        let total: f64 = joint.values().sum();
        assert!((total - 1.0).abs() < 1e-9);
        let mut marginal: HashMap<(usize, usize), f64> = HashMap::new();
        let mut by_len: HashMap<usize, f64> = HashMap::new();
        for (&(l, s, n), &p) in &joint {
            *marginal.entry((s, n)).or_default() += p;
            let best = by_len.entry(l).or_default();
            *best = best.max(p);
        }
        let mut p_len: HashMap<usize, f64> = HashMap::new();
        for (&(l, _, _), &p) in &joint {
            *p_len.entry(l).or_default() += p;
        }
        let one_no_len = marginal.values().cloned().fold(0.0, f64::max);
        let one_with_len = by_len.values().sum();
        let any_no_len = best_f1(marginal.values().map(|&p| (1.0, p)).collect());
        let any_with_len = best_f1(joint.iter().map(|(&(l, _, _), &p)| (p_len[&l], p)).collect());
        // the most probable "this position starts the entity", given the length
        let mut start: HashMap<(usize, usize), f64> = HashMap::new();
        for (&(l, s, _), &p) in &joint {
            *start.entry((l, s)).or_default() += p / p_len[&l];
        }
        let max_start = start.values().cloned().fold(0.0, f64::max);
        [one_no_len, one_with_len, any_no_len, any_with_len, max_start]
    }

    #[test]
    fn the_span_position_is_hard_to_guess_without_the_words() {
        let [one_no_len, one_with_len, any_no_len, any_with_len, max_start] = position_prior_optima();
        eprintln!(
            "image-only NER optimum: one span per sentence {one_no_len:.4} / {one_with_len:.4} (without / with the length); any spans {any_no_len:.4} / {any_with_len:.4}; max P(B at a position | length) {max_start:.4}"
        );
        // the numbers stated in the module docs and the README
        assert_eq!(format!("{:.1} {:.1} {:.1} {:.1}", 100.0 * one_no_len, 100.0 * one_with_len, 100.0 * any_no_len, 100.0 * any_with_len), "6.0 7.1 10.1 13.2");
        // so a tagger that takes the most likely tag (or tag sequence) predicts O everywhere
        assert!(max_start < 0.5, "{max_start}");
    }
}
