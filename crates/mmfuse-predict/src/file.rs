//! Batch prediction over a file of posts (`mmfuse predict --input`): JSONL
//! (`{"id": …, "text": …, "image": "path"}` per line) or CSV with a header (`text`, optional
//! `image` and `id` columns). Image paths are relative to the input file's folder. A row
//! without an image is a text-only post; without a text, an image-only post (classification
//! runs). Bad rows (malformed line, neither text nor image, an empty text for a tagger, an
//! unreadable image) are skipped, and reported with their line numbers at the end; good rows
//! keep their order. A MIM run reads JSONL segments instead
//! (`{"id": …, "words": […], "audio": [[…] per word], "video": [[…] per word]}`; audio or video
//! left out is absent).

use crate::{AlignedPost, ImageInput, Post, Predictor};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A post with its decoded image (CHW `f32`) and whether it has none (placeholder pixels).
type Decoded = (Post, Vec<f32>, bool);

/// A skipped row.
#[derive(Clone, Debug)]
pub struct BadRow {
    pub line: usize,
    pub reason: String,
}

/// What a file run did.
#[derive(Clone, Debug, Default)]
pub struct FileReport {
    pub predicted: usize,
    pub bad: Vec<BadRow>,
}

#[derive(serde::Deserialize)]
struct Row {
    #[serde(default)]
    id: Option<serde_json::Value>,
    /// Left out or empty: an image-only post (classification runs).
    #[serde(default)]
    text: String,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    ocr: Option<String>,
}

/// Read the posts of a JSONL or CSV file: `(line, post)` or `(line, error)`.
pub fn read_posts(path: &Path) -> Result<Vec<(usize, Result<Post, String>)>> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let to_post = |r: Row| -> Result<Post, String> {
        let id = r.id.map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
        let image = match r.image.filter(|s| !s.trim().is_empty()) {
            Some(p) => {
                let p = PathBuf::from(p);
                ImageInput::Path(if p.is_absolute() { p } else { base.join(p) })
            }
            None => ImageInput::None,
        };
        Ok(Post { id, text: r.text, image, ocr: r.ocr })
    };
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let mut out = Vec::new();
    if is_csv {
        let mut rdr = csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
        for (i, rec) in rdr.deserialize::<Row>().enumerate() {
            let line = i + 2; // header is line 1
            out.push((line, rec.map_err(|e| format!("malformed CSV row: {e}")).and_then(to_post)));
        }
    } else {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        for (i, l) in text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            out.push((i + 1, serde_json::from_str::<Row>(l).map_err(|e| format!("malformed JSON: {e}")).and_then(to_post)));
        }
    }
    Ok(out)
}

/// Predict every MIM segment of a JSONL file, writing one JSON line per good segment.
fn predict_aligned_file(p: &Predictor, input: &Path, out: &mut dyn Write, batch_size: usize) -> Result<FileReport> {
    let text = std::fs::read_to_string(input).with_context(|| format!("cannot read {}", input.display()))?;
    let mut report = FileReport::default();
    let mut rows: Vec<(usize, AlignedPost)> = Vec::new();
    let mut flush = |rows: &mut Vec<(usize, AlignedPost)>, report: &mut FileReport| -> Result<()> {
        let posts: Vec<AlignedPost> = rows.iter().map(|(_, r)| r.clone()).collect();
        for ((line, _), r) in rows.drain(..).zip(p.predict_aligned(&posts)) {
            match r {
                Ok(r) => {
                    serde_json::to_writer(&mut *out, &r)?;
                    out.write_all(b"\n")?;
                    report.predicted += 1;
                }
                Err(e) => report.bad.push(BadRow { line, reason: format!("{e:#}") }),
            }
        }
        Ok(())
    };
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<AlignedPost>(l) {
            Ok(post) => rows.push((i + 1, post)),
            Err(e) => report.bad.push(BadRow { line: i + 1, reason: format!("malformed segment: {e}") }),
        }
        if rows.len() >= batch_size.max(1) {
            flush(&mut rows, &mut report)?;
        }
    }
    flush(&mut rows, &mut report)?;
    report.bad.sort_by_key(|b| b.line);
    Ok(report)
}

/// Predict every post of `input`, writing one JSON line per good post to `out`.
pub fn predict_file(p: &Predictor, input: &Path, out: &mut dyn Write, batch_size: usize, quiet: bool) -> Result<FileReport> {
    if p.features().is_some() {
        return predict_aligned_file(p, input, out, batch_size);
    }
    let rows = read_posts(input)?;
    let pb = if quiet { ProgressBar::with_draw_target(Some(rows.len() as u64), ProgressDrawTarget::hidden()) } else { ProgressBar::new(rows.len() as u64) };
    pb.set_style(ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} posts {per_sec} ETA {eta}").expect("valid template"));
    let mut report = FileReport::default();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    for chunk in rows.chunks(batch_size.max(1)) {
        // decode this chunk's images on one scoped thread per core, rows kept in order
        let prepare = |post: &Result<Post, String>| -> Result<(Post, Vec<f32>, bool), String> {
            match post {
                Err(e) => Err(e.clone()),
                Ok(post) => match p.check_post(&post.text, !matches!(post.image, ImageInput::None)) {
                    Err(e) => Err(format!("{e:#}")),
                    Ok(()) => p.image(&post.image).map(|(img, no_image)| (post.clone(), img, no_image)).map_err(|e| format!("{e:#}")),
                },
            }
        };
        let per_thread = chunk.len().div_ceil(threads);
        let decoded: Vec<(usize, Result<Decoded, String>)> = std::thread::scope(|s| {
            let handles: Vec<_> =
                chunk.chunks(per_thread).map(|part| (part, s.spawn(move || part.iter().map(|(_, post)| prepare(post)).collect::<Vec<_>>()))).collect();
            handles
                .into_iter()
                .flat_map(|(part, h)| {
                    let results = h.join().unwrap_or_else(|_| part.iter().map(|_| Err("image worker panicked".to_string())).collect());
                    part.iter().map(|(line, _)| *line).zip(results).collect::<Vec<_>>()
                })
                .collect()
        });
        let mut good = Vec::new();
        for (line, r) in decoded {
            match r {
                Ok(x) => good.push(x),
                Err(reason) => report.bad.push(BadRow { line, reason }),
            }
        }
        for r in p.predict_prepared(&good)? {
            serde_json::to_writer(&mut *out, &r)?;
            out.write_all(b"\n")?;
            report.predicted += 1;
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    Ok(report)
}
