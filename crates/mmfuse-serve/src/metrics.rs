//! Prometheus text metrics: requests started by endpoint, request counts by endpoint and status,
//! a latency histogram, and a histogram of the model's batch sizes (dynamic batching at work).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, buckets: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; buckets.len()];
        }
        for (i, b) in buckets.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, buckets: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in buckets.iter().enumerate() {
            let c = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    started: BTreeMap<String, u64>,
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    batches: Histogram,
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// A request to `endpoint` was received and is being answered (started minus finished is
    /// the number in flight).
    pub fn request_started(&self, endpoint: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.started.entry(endpoint.to_string()).or_default() += 1;
    }

    pub fn observe_request(&self, endpoint: &str, status: u16, seconds: f64) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.requests.entry((endpoint.to_string(), status)).or_default() += 1;
        m.latency.entry(endpoint.to_string()).or_default().observe(&LATENCY_BUCKETS, seconds);
    }

    pub fn observe_batch(&self, size: usize) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.batches.observe(&BATCH_BUCKETS, size as f64);
    }

    pub fn render(&self) -> String {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        out.push_str("# HELP mmfuse_requests_started_total Requests received by endpoint (minus mmfuse_requests_total: in flight).\n# TYPE mmfuse_requests_started_total counter\n");
        for (e, n) in &m.started {
            let _ = writeln!(out, "mmfuse_requests_started_total{{endpoint=\"{e}\"}} {n}");
        }
        out.push_str("# HELP mmfuse_requests_total Requests by endpoint and HTTP status.\n# TYPE mmfuse_requests_total counter\n");
        for ((e, s), n) in &m.requests {
            let _ = writeln!(out, "mmfuse_requests_total{{endpoint=\"{e}\",status=\"{s}\"}} {n}");
        }
        out.push_str("# HELP mmfuse_request_seconds Request latency.\n# TYPE mmfuse_request_seconds histogram\n");
        for (e, h) in &m.latency {
            h.render(&mut out, "mmfuse_request_seconds", &format!("endpoint=\"{e}\""), &LATENCY_BUCKETS);
        }
        out.push_str("# HELP mmfuse_batch_size Posts per model call (dynamic batching).\n# TYPE mmfuse_batch_size histogram\n");
        m.batches.render(&mut out, "mmfuse_batch_size", "", &BATCH_BUCKETS);
        out
    }
}
