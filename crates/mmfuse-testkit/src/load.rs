//! A closed-loop HTTP/1.1 load generator for `mmfuse serve` on loopback, shared by the burst
//! test (`crates/mmfuse/tests/serve_process.rs`) and the load bench (`bench/serve.sh`).
//!
//! `concurrency` client threads each keep one keep-alive connection and send the next request
//! as soon as the previous answer is read, cycling through a mix of good and bad posts. Every
//! answer is read in full; its status and latency are recorded per kind of request. A refused
//! or reset connection is an I/O error (counted, then the client reconnects).

use base64::Engine;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One kind of request of the mix: a JSON body POSTed to `path`, and whether a well-behaved
/// server answers it 200 (`good`) or 4xx.
#[derive(Clone, Debug)]
pub struct Req {
    pub kind: &'static str,
    pub path: &'static str,
    pub body: Vec<u8>,
    pub good: bool,
}

/// The mix of the burst test and the load bench: text-only and text + image posts, a batch of
/// 8, and bad posts (not JSON, an unknown field, an image that is not base64, an image that is
/// not an image, a text over `max_text_chars`), in the proportions of the returned list (good
/// posts are listed more than once).
pub fn post_mix(png: &[u8], max_text_chars: usize) -> Vec<Req> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let post = |kind, body: String, good| Req { kind, path: "/v1/predict", body: body.into_bytes(), good };
    let text = r#"{"text": "so i met Kalo Terzu at the station today"}"#.to_string();
    let with_image = format!(r#"{{"text": "Kalo Terzu went home", "image": "{}"}}"#, b64.encode(png));
    let posts: Vec<String> = (0..8).map(|i| format!(r#"{{"id": "p{i}", "text": "what a lovely day number {i}"}}"#)).collect();
    let batch = Req { kind: "batch of 8", path: "/v1/predict/batch", body: format!(r#"{{"posts": [{}]}}"#, posts.join(",")).into_bytes(), good: true };
    vec![
        post("text", text.clone(), true),
        post("text + image", with_image.clone(), true),
        post("text", text, true),
        post("text + image", with_image, true),
        batch,
        post("not JSON", "{\"text\": \"unterminated".into(), false),
        post("unknown field", r#"{"text": "hi", "colour": "red"}"#.into(), false),
        post("image not base64", r#"{"text": "hi", "image": "/etc/passwd"}"#.into(), false),
        post("image not an image", format!(r#"{{"text": "hi", "image": "{}"}}"#, b64.encode(b"GIF89a but not really")), false),
        post("text too long", format!(r#"{{"text": "{}"}}"#, "a ".repeat(max_text_chars / 2 + 10)), false),
    ]
}

/// What a load run measured.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub concurrency: usize,
    pub seconds: f64,
    /// Answers by kind of request and status.
    pub by_kind: BTreeMap<(&'static str, u16), u64>,
    /// Answers by status.
    pub by_status: BTreeMap<u16, u64>,
    /// Refused, reset or unreadable connections.
    pub io_errors: u64,
    /// The first few I/O errors, for the report.
    pub io_error_samples: Vec<String>,
    /// Latency of every answer, in ms, sorted.
    pub latencies_ms: Vec<f64>,
    /// Answers that should have been 200 and were, or 4xx and were (503 aside).
    pub as_expected: u64,
    /// Answers a well-behaved server does not give (a 5xx other than 503, a 200 to a bad post,
    /// a 4xx to a good one), with the kind.
    pub unexpected: Vec<(&'static str, u16)>,
}

impl LoadReport {
    pub fn answers(&self) -> u64 {
        self.by_status.values().sum()
    }

    pub fn per_second(&self) -> f64 {
        self.answers() as f64 / self.seconds
    }

    /// The `q`-quantile (0..=1) of the latencies, in ms.
    pub fn latency_ms(&self, q: f64) -> f64 {
        if self.latencies_ms.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_ms.len() - 1) as f64 * q).round() as usize;
        self.latencies_ms[i]
    }

    /// Answers by class: `2xx`, `4xx`, `503`, `other 5xx`.
    pub fn classes(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for (s, n) in &self.by_status {
            let class = match s {
                200..=299 => "2xx",
                400..=499 => "4xx",
                503 => "503",
                _ => "other",
            };
            *out.entry(class).or_default() += n;
        }
        out
    }

    fn merge(&mut self, other: LoadReport) {
        for (k, n) in other.by_kind {
            *self.by_kind.entry(k).or_default() += n;
            *self.by_status.entry(k.1).or_default() += n;
        }
        self.io_errors += other.io_errors;
        let room = 5usize.saturating_sub(self.io_error_samples.len());
        self.io_error_samples.extend(other.io_error_samples.into_iter().take(room));
        self.latencies_ms.extend(other.latencies_ms);
        self.as_expected += other.as_expected;
        self.unexpected.extend(other.unexpected);
    }
}

/// `concurrency` clients send `mix` to `127.0.0.1:port` for `duration`.
pub fn run(port: u16, concurrency: usize, duration: Duration, mix: &[Req]) -> LoadReport {
    let start = Instant::now();
    let deadline = start + duration;
    let mut report = std::thread::scope(|s| {
        let clients: Vec<_> = (0..concurrency).map(|i| s.spawn(move || client(port, deadline, mix, i))).collect();
        let mut all = LoadReport::default();
        for c in clients {
            all.merge(c.join().expect("a load client panicked"));
        }
        all
    });
    report.concurrency = concurrency;
    report.seconds = start.elapsed().as_secs_f64();
    report.latencies_ms.sort_by(f64::total_cmp);
    report
}

/// One client: keep-alive requests from `mix`, starting at `offset`, until `deadline`.
fn client(port: u16, deadline: Instant, mix: &[Req], offset: usize) -> LoadReport {
    let mut r = LoadReport::default();
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    let mut next = offset;
    while Instant::now() < deadline {
        let req = &mix[next % mix.len()];
        next += 1;
        if conn.is_none() {
            match TcpStream::connect(("127.0.0.1", port)).and_then(|c| {
                c.set_read_timeout(Some(Duration::from_secs(30)))?;
                c.set_nodelay(true)?;
                Ok((c.try_clone()?, BufReader::new(c)))
            }) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    r.io_error(format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        let (w, reader) = conn.as_mut().expect("connected above");
        let t = Instant::now();
        let head = format!("POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", req.path, req.body.len());
        let answer = w.write_all(head.as_bytes()).and_then(|_| w.write_all(&req.body)).and_then(|_| read_response(reader));
        match answer {
            Ok((status, close)) => {
                r.latencies_ms.push(t.elapsed().as_secs_f64() * 1e3);
                *r.by_kind.entry((req.kind, status)).or_default() += 1;
                let expected = status == 503 || if req.good { status == 200 } else { (400..500).contains(&status) };
                if expected {
                    r.as_expected += 1;
                } else {
                    r.unexpected.push((req.kind, status));
                }
                if close {
                    conn = None;
                }
            }
            Err(e) => {
                r.io_error(format!("{}: {e}", req.kind));
                conn = None;
            }
        }
    }
    r
}

impl LoadReport {
    fn io_error(&mut self, what: String) {
        self.io_errors += 1;
        if self.io_error_samples.len() < 5 {
            self.io_error_samples.push(what);
        }
    }
}

/// Reads one response in full: its status, and whether the server closes the connection.
pub fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed before the answer"));
    }
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("bad status line"))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in the headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "content-length" => length = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "connection" => close = v.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("bad chunk size"))?;
            let mut skip = vec![0u8; n + 2];
            r.read_exact(&mut skip)?;
            if n == 0 {
                break;
            }
        }
    } else if let Some(n) = length {
        std::io::copy(&mut r.take(n as u64), &mut std::io::sink())?;
    } else {
        std::io::copy(r, &mut std::io::sink())?;
        close = true;
    }
    Ok((status, close))
}

/// A GET on the server: status and body.
pub fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut c = TcpStream::connect(("127.0.0.1", port))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(c, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut raw = String::new();
    c.read_to_string(&mut raw)?;
    let status = raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
    Ok((status, body))
}

/// The batcher's histogram from `/metrics`: cumulative (upper bound, model calls) buckets, the
/// number of model calls and the number of posts.
pub type BatchSizes = (Vec<(String, u64)>, u64, f64);

/// [`BatchSizes`] read from the server's `/metrics`.
pub fn batch_sizes(port: u16) -> std::io::Result<BatchSizes> {
    let (_, text) = get(port, "/metrics")?;
    let mut buckets = Vec::new();
    let (mut calls, mut posts) = (0, 0.0);
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("mmfuse_batch_size_bucket{le=\"") {
            if let Some((le, n)) = rest.split_once("\"} ") {
                buckets.push((le.to_string(), n.trim().parse().unwrap_or(0)));
            }
        } else if let Some(n) = l.strip_prefix("mmfuse_batch_size_count ") {
            calls = n.trim().parse().unwrap_or(0);
        } else if let Some(n) = l.strip_prefix("mmfuse_batch_size_sum ") {
            posts = n.trim().parse().unwrap_or(0.0);
        }
    }
    Ok((buckets, calls, posts))
}

/// Peak resident memory of process `pid` (Linux `VmHWM`), in MiB.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}
