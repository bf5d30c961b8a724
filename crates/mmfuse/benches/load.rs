//! Load bench of a running `mmfuse serve` (driven by `bench/serve.sh`): at each concurrency
//! level, closed-loop keep-alive clients send the burst test's mix of good and bad posts
//! (`mmfuse_testkit::load::post_mix`) for a fixed time. Prints a markdown table (answers/s,
//! posts the model predicted per second, p50/p99 latency of all answers, posts per model call
//! the batcher formed, answers by class, I/O errors), the server's peak RSS, and one JSON line
//! per level to `--jsonl`. Exits 1 if any answer was not
//! the one a well-behaved server gives (a 5xx other than 503, a 200 to a bad post, a 4xx to a
//! good one) or a connection failed.
//!
//!   load --port P --image PNG [--pid PID] [--levels 1,16,64,256] [--seconds 10] [--jsonl F]

use mmfuse_testkit::load;
use std::io::Write;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let (Some(port), Some(image)) = (value("--port").and_then(|p| p.parse::<u16>().ok()), value("--image")) else {
        eprintln!("usage: load --port P --image PNG [--pid PID] [--levels 1,16,64,256] [--seconds 10] [--jsonl FILE]");
        std::process::exit(2);
    };
    let pid: Option<u32> = value("--pid").and_then(|p| p.parse().ok());
    let levels: Vec<usize> = value("--levels").unwrap_or_else(|| "1,16,64,256".into()).split(',').filter_map(|l| l.parse().ok()).collect();
    let seconds: f64 = value("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let png = std::fs::read(&image).unwrap_or_else(|e| panic!("cannot read {image}: {e}"));
    // the overlong text is measured against the server's default --max-text-chars
    let mix = load::post_mix(&png, 5000);
    let mut jsonl = value("--jsonl").map(|p| std::fs::OpenOptions::new().create(true).append(true).open(&p).unwrap_or_else(|e| panic!("cannot open {p}: {e}")));
    println!("| concurrency | answers/s | posts predicted/s | p50 ms | p99 ms | posts per model call | 2xx | 4xx | 503 | other 5xx | I/O errors |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut failed = false;
    for &c in &levels {
        let (_, calls0, posts0) = load::batch_sizes(port).expect("server metrics");
        let r = load::run(port, c, Duration::from_secs_f64(seconds), &mix);
        let (buckets, calls1, posts1) = load::batch_sizes(port).expect("server metrics");
        let per_call = (posts1 - posts0) / (calls1 - calls0).max(1) as f64;
        let posts_per_s = (posts1 - posts0) / r.seconds;
        let k = r.classes();
        let n = |class: &str| k.get(class).copied().unwrap_or(0);
        println!(
            "| {c} | {:.0} | {posts_per_s:.0} | {:.1} | {:.1} | {per_call:.1} | {} | {} | {} | {} | {} |",
            r.per_second(),
            r.latency_ms(0.5),
            r.latency_ms(0.99),
            n("2xx"),
            n("4xx"),
            n("503"),
            n("other"),
            r.io_errors
        );
        if let Some(f) = jsonl.as_mut() {
            let line = serde_json::json!({
                "bench": "serve_load", "concurrency": c, "seconds": r.seconds, "answers_per_s": r.per_second(), "posts_predicted_per_s": posts_per_s,
                "p50_ms": r.latency_ms(0.5), "p99_ms": r.latency_ms(0.99), "posts_per_model_call": per_call,
                "classes": k, "io_errors": r.io_errors, "unexpected": r.unexpected.len(),
                "batch_buckets_cumulative": buckets, "peak_rss_mb": pid.and_then(load::peak_rss_mb),
            });
            writeln!(f, "{line}").expect("write the jsonl");
        }
        if r.io_errors > 0 || !r.unexpected.is_empty() {
            eprintln!("level {c}: I/O errors {:?}, unexpected answers {:?}", r.io_error_samples, &r.unexpected[..r.unexpected.len().min(10)]);
            failed = true;
        }
    }
    if let Some(rss) = pid.and_then(load::peak_rss_mb) {
        println!("\nserver peak RSS: {rss:.0} MiB");
    }
    if failed {
        std::process::exit(1);
    }
}
