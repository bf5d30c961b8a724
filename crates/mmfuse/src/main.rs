//! `mmfuse`: train, evaluate and serve multimodal (text + image) fusion models.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use mmfuse::demo::{DemoOptions, format_table, run_demo};
use mmfuse_data::synth::{SynthConfig, generate};
use mmfuse_kernels::device::DeviceSpec;
use mmfuse_train::{RunConfig, TrainOptions, run_training};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "mmfuse", version, about = "Train, evaluate and serve multimodal (text + image) fusion models")]
struct Cli {
    /// Compute device: cpu (default) or cuda[:N] (needs a build with --features cuda).
    #[arg(long, global = true)]
    device: Option<DeviceSpec>,
    /// No progress bars; only warnings and results.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Missing or unreadable images: `error` (default: stop, naming the file) or `placeholder`
    /// (a grey image, counted and reported at the end). Same as --set data.missing_image=….
    #[arg(long, global = true)]
    missing_image: Option<mmfuse_data::image::MissingImage>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate the synthetic corpus, train text-only, image-only and fused models, print their
    /// test scores.
    Demo {
        /// Output folder (corpus and runs); default: a fresh folder under the system temp dir.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Training samples per task.
        #[arg(long, default_value_t = 3000)]
        train_samples: usize,
        /// Only these tasks (classify, ner).
        #[arg(long, value_delimiter = ',', default_value = "classify,ner")]
        tasks: Vec<String>,
        /// Config overrides applied to every run, e.g. --set train.epochs=2.
        #[arg(long = "set")]
        set: Vec<String>,
        /// Also train MuSE (CrossTransformer exchange) on each task (about 3 more minutes).
        #[arg(long)]
        muse: bool,
        /// Also train CLFA (no-alignment setting) on the classification task (under a minute).
        #[arg(long)]
        clfa: bool,
        /// Also train MIM and its no-UPN/KGS ablation on the synthetic word-aligned corpus
        /// (sentiment regression, MAE; about 3 minutes).
        #[arg(long)]
        mim: bool,
    },
    /// Write the synthetic corpus (Twitter-CoNLL NER + JSONL classification, PNG images).
    Synth {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 3000)]
        train: usize,
        #[arg(long, default_value_t = 500)]
        dev: usize,
        #[arg(long, default_value_t = 1000)]
        test: usize,
        /// Fraction of labels replaced by a random other label.
        #[arg(long, default_value_t = 0.0)]
        label_noise: f32,
    },
    /// Write the synthetic word-aligned text/audio/video corpus (MOSI-like, with noisy spans) in
    /// mmfuse's aligned layout, for `data.task = "regression"` (MIM).
    SynthAligned {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 1284)]
        train: usize,
        #[arg(long, default_value_t = 229)]
        dev: usize,
        #[arg(long, default_value_t = 686)]
        test: usize,
        /// Share of segments whose audio or video carries a span of noise.
        #[arg(long, default_value_t = 0.5)]
        noise_fraction: f32,
    },
    /// Convert word-aligned features (MAG-BERT `mosi.pkl`/`mosei.pkl`, or an MMSA feature
    /// pickle), read safely (nothing in the pickle is executed), to mmfuse's aligned layout
    /// (`{train,dev,test}.jsonl` + `.safetensors`).
    PrepareMosi {
        /// The `.pkl` file.
        #[arg(long)]
        input: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write embeddings of texts (a pretrained BERT folder) or images (torchvision ResNet or
    /// MobileNetV2 safetensors) to a safetensors file (`embeddings` [N, D]).
    Encode {
        /// Hugging Face BERT folder (config.json, model.safetensors, tokenizer.json).
        #[arg(long, requires = "texts", conflicts_with = "image_encoder")]
        text_encoder: Option<PathBuf>,
        /// Text file, one text per line (empty lines skipped).
        #[arg(long)]
        texts: Option<PathBuf>,
        /// torchvision ResNet or MobileNetV2 weights (.safetensors).
        #[arg(long, requires = "images")]
        image_encoder: Option<PathBuf>,
        /// Folder of .jpg/.jpeg/.png images (embedded in file-name order).
        #[arg(long)]
        images: Option<PathBuf>,
        /// Output .safetensors file.
        #[arg(long)]
        out: PathBuf,
        /// Text pooling.
        #[arg(long, value_enum, default_value = "mean")]
        pooling: mmfuse::encode::Pooling,
        /// Word pieces per text ([CLS]/[SEP] included).
        #[arg(long, default_value_t = 128)]
        max_len: usize,
        /// Image preprocessing preset: imagenet_eval, muse or clip.
        #[arg(long, default_value = "imagenet_eval")]
        preprocess: mmfuse_data::preprocess::Preprocess,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
    },
    /// CLFA's teacher: frozen CLIP text and image embeddings of every post of a classification
    /// corpus (train/dev/test.jsonl), computed once and cached by sample id (use as data.teacher).
    ClipEmbed {
        /// Hugging Face CLIP folder (config.json, model.safetensors, tokenizer.json).
        #[arg(long)]
        clip: PathBuf,
        /// Corpus folder with train.jsonl, dev.jsonl, test.jsonl.
        #[arg(long)]
        data: PathBuf,
        /// Image folder for samples without an `image` field (<id>.jpg), relative to --data.
        #[arg(long, default_value = "images")]
        image_dir: PathBuf,
        /// Output .safetensors cache.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
    },
    /// Score a run folder's best checkpoint on its dev and test splits again; prints the JSON
    /// detail (all metrics, incl. the MuSE reference word-piece scorer for NER).
    Evaluate {
        /// The run folder.
        #[arg(long)]
        model: PathBuf,
        /// Corpus folder (default: the run's data.dir).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Turn MMSD (Python-literal text files, read safely, never evaluated) or MMSD2.0 (JSON)
    /// splits into train/dev/test JSONL for sarcasm detection (labels sarcastic / not_sarcastic).
    PrepareMmsd {
        /// Train split: MMSD `train.txt` or MMSD2.0 `train.json`.
        #[arg(long)]
        train: PathBuf,
        /// Dev split (`valid.txt` / `valid.json`).
        #[arg(long)]
        dev: PathBuf,
        /// Test split (`test.txt` / `test.json`).
        #[arg(long)]
        test: PathBuf,
        /// Folder of the `<id>.jpg` images (written into the JSONL as absolute paths).
        #[arg(long)]
        image_dir: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Turn an MVSA-Single or MVSA-Multiple folder (labelResultAll.txt, data/<id>.txt|jpg) into
    /// cleaned train/dev/test JSONL (8:1:1, seeded) for `data.task = "classify"`.
    PrepareMvsa {
        /// The MVSA folder.
        #[arg(long)]
        dir: PathBuf,
        /// Output folder for train.jsonl, dev.jsonl, test.jsonl and report.json.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Train a model from a TOML config; the run folder becomes a self-contained model package.
    Train {
        /// The TOML config (see configs/).
        #[arg(long)]
        config: PathBuf,
        /// Run folder.
        #[arg(long)]
        out: PathBuf,
        /// Overrides, e.g. --set train.lr=5e-5 --set model.modality=text.
        #[arg(long = "set")]
        set: Vec<String>,
        /// Continue from the run folder's last checkpoint.
        #[arg(long)]
        resume: bool,
    },
    /// Train the same config with several seeds; report mean ± std of the test scores.
    Sweep {
        #[arg(long)]
        config: PathBuf,
        /// Folder for the runs (one sub-folder per seed) and `sweep.json`.
        #[arg(long)]
        out: PathBuf,
        /// Seeds, e.g. 1,2,3.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        seeds: Vec<u64>,
        #[arg(long = "set")]
        set: Vec<String>,
    },
    /// Predict with a trained run folder: a file of posts (JSONL or CSV) or one post.
    Predict {
        /// The run folder (model package) written by `mmfuse train`.
        #[arg(long)]
        model: PathBuf,
        /// JSONL (`{"id", "text", "image"}` per line) or CSV (`text`, `image`, `id` columns).
        #[arg(long, conflicts_with = "text")]
        input: Option<PathBuf>,
        /// Where to write JSONL predictions (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        /// One post's text.
        #[arg(long)]
        text: Option<String>,
        /// One post's image (with --text).
        #[arg(long, requires = "text")]
        image: Option<PathBuf>,
        /// The OCR text of the post's image (with --text; CLFA models with the OCR stream).
        #[arg(long, requires = "text")]
        ocr: Option<String>,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
    },
    /// Serve a trained run folder over HTTP (JSON API, metrics, web page at /).
    Serve {
        /// The run folder (model package) written by `mmfuse train`.
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Most posts per model call (dynamic batching).
        #[arg(long, default_value_t = 32)]
        max_batch: usize,
        /// Longest wait for more posts after the first of a batch, in ms.
        #[arg(long, default_value_t = 5)]
        max_wait_ms: u64,
        /// Largest request body, in bytes.
        #[arg(long, default_value_t = 10 << 20)]
        max_body_bytes: usize,
        /// Largest image, in pixels (checked from the header, before decoding).
        #[arg(long, default_value_t = 40_000_000)]
        max_pixels: u64,
        /// Longest text, in characters.
        #[arg(long, default_value_t = 5000)]
        max_text_chars: usize,
        /// Time limit of one request, in ms.
        #[arg(long, default_value_t = 10_000)]
        request_timeout_ms: u64,
        /// Most requests in flight.
        #[arg(long, default_value_t = 512)]
        max_concurrency: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    let level = if cli.quiet { tracing::Level::WARN } else { tracing::Level::INFO };
    tracing_subscriber::fmt().with_max_level(level).with_target(false).with_writer(std::io::stderr).init();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut global_overrides: Vec<String> = cli.device.as_ref().map(|d| format!("train.device=\"{d}\"")).into_iter().collect();
    if let Some(m) = cli.missing_image {
        global_overrides.push(format!("data.missing_image=\"{}\"", if m == mmfuse_data::image::MissingImage::Placeholder { "placeholder" } else { "error" }));
    }
    if let Some(d) = &cli.device {
        d.device().map_err(anyhow::Error::msg)?;
    }
    match cli.command {
        Command::Demo { out, seed, train_samples, tasks, mut set, muse, clfa, mim } => {
            let out = out.unwrap_or_else(|| std::env::temp_dir().join(format!("mmfuse-demo-{}", std::process::id())));
            set.extend(global_overrides);
            let opts = DemoOptions { seed, n_train: train_samples, overrides: set, quiet: cli.quiet, tasks, muse, clfa, mim, ..Default::default() };
            let start = std::time::Instant::now();
            let rows = run_demo(&out, &opts)?;
            println!("{}", format_table(&rows));
            println!("corpus and runs in {} ({:.0} s in all)", out.display(), start.elapsed().as_secs_f64());
        }
        Command::Synth { out, seed, train, dev, test, label_noise } => {
            let s = generate(&out, &SynthConfig { seed, n_train: train, n_dev: dev, n_test: test, label_noise, ..SynthConfig::default() })?;
            println!("wrote {} ({s:?})", out.display());
        }
        Command::SynthAligned { out, seed, train, dev, test, noise_fraction } => {
            use mmfuse_data::aligned_synth::{AlignedSynthConfig, generate};
            let ds = generate(&AlignedSynthConfig { seed, n_train: train, n_dev: dev, n_test: test, noise_fraction, ..Default::default() });
            mmfuse_data::aligned::write_dir(&ds, &out)?;
            println!("wrote {} ({} / {} / {} segments)", out.display(), ds.train.samples.len(), ds.dev.samples.len(), ds.test.samples.len());
        }
        Command::PrepareMosi { input, out } => {
            let ds = mmfuse_data::aligned::read_any(&input)?;
            mmfuse_data::aligned::write_dir(&ds, &out)?;
            println!(
                "{} → {}: {} / {} / {} segments, audio {}-d, video {}-d",
                input.display(),
                out.display(),
                ds.train.samples.len(),
                ds.dev.samples.len(),
                ds.test.samples.len(),
                ds.train.audio_dim,
                ds.train.video_dim
            );
        }
        Command::Encode { text_encoder, texts, image_encoder, images, out, pooling, max_len, preprocess, batch_size } => {
            let spec = cli.device.clone().unwrap_or_default();
            let device = spec.device().map_err(anyhow::Error::msg)?;
            let (n, d) = match (text_encoder, texts, image_encoder, images) {
                (Some(enc), Some(t), None, None) => {
                    let enc = mmfuse_train::hub::resolve_folder(&enc, &["config.json", "model.safetensors", "tokenizer.json"], "--text-encoder")?;
                    mmfuse::encode::encode_texts(&enc, &t, &out, max_len, batch_size, pooling, &device, cli.quiet)?
                }
                (None, None, Some(enc), Some(i)) => mmfuse::encode::encode_images(&enc, &i, &out, preprocess, batch_size, &device, cli.quiet)?,
                _ => anyhow::bail!("give either --text-encoder DIR --texts FILE or --image-encoder FILE --images DIR"),
            };
            println!("wrote {n} embeddings of size {d} to {}", out.display());
        }
        Command::ClipEmbed { clip, data, image_dir, out, batch_size } => {
            let spec = cli.device.clone().unwrap_or_default();
            let device = spec.device().map_err(anyhow::Error::msg)?;
            let image_dir = if image_dir.is_absolute() { image_dir } else { data.join(image_dir) };
            let mut samples = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for f in ["train.jsonl", "dev.jsonl", "test.jsonl"] {
                let (s, _) = mmfuse_data::cls::read_jsonl(&data.join(f))?;
                for x in s {
                    if seen.insert(x.id.clone()) {
                        let p = mmfuse_train::examples::cls_image_path(&x, &data, &image_dir);
                        samples.push((x, p));
                    }
                }
            }
            let missing = cli.missing_image.unwrap_or(mmfuse_data::image::MissingImage::Error);
            let clip = mmfuse_train::hub::resolve_folder(&clip, &["config.json", "model.safetensors", "tokenizer.json"], "--clip")?;
            let (n, p, ph) = mmfuse_train::teacher::write_clip_cache(&clip, &samples, &out, missing, batch_size, &device, cli.quiet)?;
            println!("wrote CLIP text and image embeddings of {n} posts (size {p}) to {}", out.display());
            if ph > 0 {
                println!("placeholder images used: {ph}");
            }
        }
        Command::Evaluate { model, data } => {
            let spec = cli.device.clone().unwrap_or_default();
            let device = spec.device().map_err(anyhow::Error::msg)?;
            let (dev, test) = mmfuse_train::run::rescore(&model, data.as_deref(), &device)?;
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({"dev": dev.detail, "test": test.detail}))?);
        }
        Command::PrepareMmsd { train, dev, test, image_dir, out } => {
            let images = std::path::absolute(&image_dir).with_context(|| format!("cannot resolve {}", image_dir.display()))?;
            let images = images.to_string_lossy().into_owned();
            std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
            for (src, name) in [(&train, "train.jsonl"), (&dev, "dev.jsonl"), (&test, "test.jsonl")] {
                let json = src.extension().is_some_and(|e| e == "json");
                let (samples, report) = if json { mmfuse_data::mmsd::read_mmsd2_json(src, &images)? } else { mmfuse_data::mmsd::read_mmsd_txt(src, &images)? };
                let text: String = samples.iter().map(|s| serde_json::to_string(s).map(|l| l + "\n")).collect::<Result<_, _>>()?;
                mmfuse_train::checkpoint::write_atomic(&out.join(name), text.as_bytes())?;
                println!("{} → {}: {report:?}", src.display(), out.join(name).display());
            }
        }
        Command::PrepareMvsa { dir, out, seed } => {
            let (samples, report) = mmfuse_data::mvsa::read_mvsa(&dir)?;
            let abs = std::fs::canonicalize(&dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
            std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
            let samples: Vec<_> = samples
                .into_iter()
                .map(|mut s| {
                    s.image = s.image.map(|p| abs.join(p).to_string_lossy().into_owned());
                    s
                })
                .collect();
            let splits = mmfuse_data::mvsa::split(samples, seed);
            for (name, part) in ["train.jsonl", "dev.jsonl", "test.jsonl"].iter().zip(&splits) {
                let text: String = part.iter().map(|s| serde_json::to_string(s).map(|l| l + "\n")).collect::<Result<_, _>>()?;
                mmfuse_train::checkpoint::write_atomic(&out.join(name), text.as_bytes())?;
            }
            mmfuse_train::checkpoint::write_atomic(&out.join("report.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
            println!(
                "{} posts: kept {}, dropped {} conflicting, {} without majority, {} without text ({} Latin-1 texts); train/dev/test {}/{}/{} in {}",
                report.posts,
                report.kept,
                report.conflicting,
                report.no_majority,
                report.missing_text,
                report.latin1_texts,
                splits[0].len(),
                splits[1].len(),
                splits[2].len(),
                out.display()
            );
        }
        Command::Train { config, out, mut set, resume } => {
            set.extend(global_overrides);
            let cfg = RunConfig::load(&config, &set)?;
            let s = run_training(&cfg, &out, &TrainOptions { resume, quiet: cli.quiet, stop_after: None })
                .with_context(|| format!("training run {}", out.display()))?;
            println!("best dev {} = {:.4} at step {}", cfg.select_metric(), s.fit.best_metric.unwrap_or(f64::NAN), s.fit.best_step);
            if let Ok(r) = std::fs::read_to_string(out.join("results.json"))
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&r)
                && let Some(n) = v["placeholder_images"].as_u64().filter(|n| *n > 0)
            {
                println!("placeholder images used: {n} (missing or unreadable image files, see the warnings above)");
            }
            if let Some(t) = &s.test {
                println!("test: {}", serde_json::to_string(&t.scores)?);
            }
            println!("run folder: {}", out.display());
        }
        Command::Sweep { config, out, seeds, mut set } => {
            set.extend(global_overrides);
            let mut per_metric: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
            for seed in &seeds {
                let mut o = set.clone();
                o.push(format!("train.seed={seed}"));
                let cfg = RunConfig::load(&config, &o)?;
                let run = out.join(format!("seed-{seed}"));
                let s = run_training(&cfg, &run, &TrainOptions { quiet: cli.quiet, ..Default::default() })
                    .with_context(|| format!("training run {}", run.display()))?;
                for (k, v) in s.test.map(|t| t.scores).unwrap_or_default() {
                    per_metric.entry(k).or_default().push(v);
                }
            }
            let mut summary = serde_json::Map::new();
            println!("| test metric | mean | std | runs |\n|---|---:|---:|---:|");
            for (k, v) in &per_metric {
                let n = v.len() as f64;
                let mean = v.iter().sum::<f64>() / n;
                let std = if v.len() > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
                println!("| {k} | {:.2} | {:.2} | {} |", 100.0 * mean, 100.0 * std, v.len());
                summary.insert(k.clone(), serde_json::json!({"mean": mean, "std": std, "values": v}));
            }
            std::fs::write(out.join("sweep.json"), serde_json::to_string_pretty(&serde_json::json!({"seeds": seeds, "test": summary}))?)?;
            println!("(sample standard deviation over seeds; runs and sweep.json in {})", out.display());
        }
        Command::Predict { model, input, output, text, image, ocr, batch_size } => {
            let spec = cli.device.clone().unwrap_or_default();
            let device = spec.device().map_err(anyhow::Error::msg)?;
            let p = mmfuse_predict::Predictor::load(&model, &device)?;
            let mut sink: Box<dyn std::io::Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?)),
                None => Box::new(std::io::stdout().lock()),
            };
            if let Some(input) = input {
                let report = mmfuse_predict::file::predict_file(&p, &input, &mut sink, batch_size, cli.quiet)?;
                sink.flush()?;
                eprintln!("{} predicted, {} skipped", report.predicted, report.bad.len());
                for b in &report.bad {
                    eprintln!("  {}:{}: skipped: {}", input.display(), b.line, b.reason);
                }
            } else if let Some(text) = text {
                let image = image.map(mmfuse_predict::ImageInput::Path).unwrap_or(mmfuse_predict::ImageInput::None);
                let r = p.predict(vec![mmfuse_predict::Post { id: None, text, image, ocr }]).pop().expect("one result")?;
                serde_json::to_writer_pretty(&mut sink, &r)?;
                writeln!(sink)?;
            } else {
                anyhow::bail!("give --input FILE, or --text TEXT [--image FILE]");
            }
        }
        Command::Serve { model, host, port, max_batch, max_wait_ms, max_body_bytes, max_pixels, max_text_chars, request_timeout_ms, max_concurrency } => {
            let spec = cli.device.clone().unwrap_or_default();
            let device = spec.device().map_err(anyhow::Error::msg)?;
            let p = mmfuse_predict::Predictor::load(&model, &device)?;
            let cfg = mmfuse_serve::ServeConfig {
                max_batch,
                max_wait_ms,
                max_body_bytes,
                max_pixels,
                max_text_chars,
                request_timeout_ms,
                max_concurrency,
                ..Default::default()
            };
            let addr: std::net::SocketAddr = format!("{host}:{port}").parse().with_context(|| format!("bad address {host}:{port}"))?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(mmfuse_serve::serve(p, cfg, addr))?;
        }
    }
    Ok(())
}
