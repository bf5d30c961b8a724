//! `mmfuse serve` as a process: SIGTERM lets the request in flight finish with a full answer,
//! then the server exits cleanly and stops accepting connections.

use mmfuse_data::synth::{SynthConfig, generate};
use mmfuse_train::{RunConfig, TrainOptions, run_training};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Send a whole request in one write (a request still arriving when SIGTERM comes is not in
/// flight yet, and the server rightly closes that connection).
fn request(conn: &mut TcpStream, method: &str, path: &str, body: &str) {
    let req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    conn.set_nodelay(true).unwrap();
    conn.write_all(req.as_bytes()).unwrap();
    conn.flush().unwrap();
}

fn response(reader: &mut BufReader<TcpStream>) -> (u16, String) {
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    if status.is_empty() {
        return (0, "the server closed the connection without answering".into());
    }
    let code = status.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    (code, String::from_utf8(body).unwrap())
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits() {
    let dir = std::env::temp_dir().join(format!("mmfuse-sigterm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let corpus = dir.join("corpus");
    generate(&corpus, &SynthConfig { seed: 1, n_train: 64, n_dev: 16, n_test: 16, ..Default::default() }).unwrap();
    let o: Vec<String> = vec![
        format!("data.dir=\"{}\"", corpus.join("cls").display()),
        "model.d_model=16".into(),
        "model.n_heads=2".into(),
        "model.cnn_channels=[8]".into(),
        "train.epochs=1".into(),
    ];
    let cfg = RunConfig::from_toml_str("[data]\ntask = \"classify\"\ndir = \"x\"\n[model]\n[train]\n", &o).unwrap();
    run_training(&cfg, &dir.join("run"), &TrainOptions { quiet: true, ..Default::default() }).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmfuse"))
        .args(["-q", "serve", "--model"])
        .arg(dir.join("run"))
        .args(["--port", &port.to_string(), "--max-batch", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut conn = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(c) => break c,
            Err(_) if start.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("server did not start: {e}"),
        }
    };
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    request(&mut conn, "GET", "/healthz", "");
    assert_eq!(response(&mut reader).0, 200);

    // a request of 200 posts is in flight when SIGTERM arrives
    let posts: Vec<String> = (0..200).map(|i| format!("{{\"text\": \"what a lovely day number {i}\"}}")).collect();
    request(&mut conn, "POST", "/v1/predict/batch", &format!("{{\"posts\": [{}]}}", posts.join(",")));
    std::thread::sleep(Duration::from_millis(1));
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let (code, body) = response(&mut reader);
    if code != 200 {
        let _ = child.wait();
        let mut log = String::new();
        child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
        panic!("{code} {body}; server log: {log}");
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 200);
    assert!(results.iter().all(|r| r["label"].is_string()), "{body}");
    drop(reader);
    drop(conn);

    // the process exits cleanly, and nothing listens any more
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(status.success(), "exit status {status}: {log}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
