//! The training-curve plot is written as a decodable PNG of the requested size with content.

use mmfuse_metrics::plot::{PLOT_HEIGHT, PLOT_WIDTH};
use mmfuse_metrics::{CurvePoint, PlotError, plot_curves};
use std::collections::HashSet;
use std::io::BufReader;
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mmfuse-metrics-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Decodes an RGB(A) PNG; returns (width, height, pixels as RGB triples).
fn decode(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = png::Decoder::new(BufReader::new(file)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected colour type {other:?}"),
    };
    let px = buf[..info.buffer_size()].chunks(step).map(|c| [c[0], c[1], c[2]]).collect();
    (info.width, info.height, px)
}

fn sample_curves() -> (Vec<CurvePoint>, Vec<(String, Vec<CurvePoint>)>) {
    let loss: Vec<CurvePoint> = (0..200)
        .map(|s| {
            let v = if s == 57 { f64::NAN } else { 2.5 * (-(s as f64) / 50.0).exp() + 0.3 + 0.05 * ((s as f64) * 0.7).sin() };
            CurvePoint::new(s * 10, v)
        })
        .collect();
    let f1: Vec<CurvePoint> = (1..=10).map(|e| CurvePoint::new(e * 200, 0.9 - 0.5 * (-(e as f64) / 3.0).exp())).collect();
    let acc: Vec<CurvePoint> = (1..=10).map(|e| CurvePoint::new(e * 200, if e == 4 { f64::NAN } else { 0.95 - 0.4 * (-(e as f64) / 2.5).exp() })).collect();
    (loss, vec![("dev F1".to_string(), f1), ("dev acc".to_string(), acc)])
}

#[test]
fn writes_decodable_png_with_content() {
    let (loss, dev) = sample_curves();
    let path = tmp("curves.png");
    plot_curves(&path, "run-42: MuSE on Twitter-2015", &loss, &dev).unwrap();
    let (w, h, px) = decode(&path);
    assert_eq!((w, h), (PLOT_WIDTH, PLOT_HEIGHT));
    assert_eq!(px.len(), (w * h) as usize);
    let distinct: HashSet<[u8; 3]> = px.iter().copied().collect();
    assert!(distinct.len() > 10, "image is (nearly) flat: {} colours", distinct.len());
    // The line colours are present: the loss is tab-blue, the second dev metric tab-orange.
    assert!(px.contains(&[31, 119, 180]));
    assert!(px.contains(&[255, 127, 14]));
    // Text is rendered (anti-aliased grey pixels exist besides pure black/white lines).
    let greys = px.iter().filter(|p| p[0] == p[1] && p[1] == p[2] && p[0] > 30 && p[0] < 200).count();
    assert!(greys > 200, "little anti-aliased text: {greys}");

    // The sample a person looks at.
    plot_curves(Path::new("/tmp/mmfuse-plot-sample.png"), "run-42: MuSE on Twitter-2015", &loss, &dev).unwrap();
}

#[test]
fn empty_and_degenerate_inputs_do_not_panic() {
    let path = tmp("empty.png");
    plot_curves(&path, "", &[], &[]).unwrap();
    let (w, h, px) = decode(&path);
    assert_eq!((w, h), (PLOT_WIDTH, PLOT_HEIGHT));
    assert!(px.iter().collect::<HashSet<_>>().len() > 1);

    // All-NaN curves, a single point, a constant curve, an empty-named metric, huge steps.
    let nan = vec![CurvePoint::new(0, f64::NAN), CurvePoint::new(1, f64::NEG_INFINITY)];
    let dev = vec![
        ("all nan".to_string(), nan.clone()),
        ("single".to_string(), vec![CurvePoint::new(5, 0.5)]),
        (String::new(), vec![CurvePoint::new(0, 1.0), CurvePoint::new(9, 1.0)]),
        ("empty".to_string(), vec![]),
    ];
    plot_curves(&tmp("nan.png"), "nan", &nan, &dev).unwrap();
    let big = vec![CurvePoint::new(usize::MAX - 1, 1e300), CurvePoint::new(usize::MAX, -1e300)];
    plot_curves(&tmp("big.png"), "big", &big, &[]).unwrap();
    let single = vec![CurvePoint::new(3, 7.0)];
    plot_curves(&tmp("single.png"), "single", &single, &[]).unwrap();
    assert_eq!(decode(&tmp("single.png")).0, PLOT_WIDTH);
}

#[test]
fn unwritable_path_is_an_error() {
    let (loss, dev) = sample_curves();
    let err = plot_curves(Path::new("/nonexistent-dir/x/y.png"), "t", &loss, &dev).unwrap_err();
    assert!(matches!(err, PlotError::Io(_)), "{err}");
}
