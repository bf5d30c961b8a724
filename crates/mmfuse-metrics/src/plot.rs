//! Training-curve plots as PNG files.
//!
//! [`plot_curves`] draws a [`PLOT_WIDTH`]×[`PLOT_HEIGHT`] image with the run's title on top
//! and two panels: the training loss against the step (left) and one line per dev metric
//! against the step (right), each with tick labels, axis descriptions and a legend.
//! [`plot_lines`] draws one such panel (e.g. a robustness report's scores against severity).
//!
//! Text is rendered with plotters' `ab_glyph` backend using the DejaVu Sans font embedded by
//! the `dejavu` crate, so no system font or font library is needed. The image is rendered in
//! memory and encoded with the `png` crate, so the file is PNG whatever its extension.
//!
//! Non-finite values (NaN, ±∞) are skipped; a line is broken where points were skipped.
//! Empty inputs give an empty panel that says "no data". Nothing here panics on bad input.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

/// Width of the image written by [`plot_curves`], in pixels.
pub const PLOT_WIDTH: u32 = 900;
/// Height of the image written by [`plot_curves`], in pixels.
pub const PLOT_HEIGHT: u32 = 400;

const FONT: &str = "sans-serif";

/// One point of a curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Training step (x axis).
    pub step: usize,
    /// Value at that step (y axis); non-finite values are not drawn.
    pub value: f64,
}

impl CurvePoint {
    /// Convenience constructor.
    pub fn new(step: usize, value: f64) -> Self {
        CurvePoint { step, value }
    }
}

/// Why a plot could not be written.
#[derive(Debug)]
pub enum PlotError {
    /// Creating or writing the file failed.
    Io(std::io::Error),
    /// PNG encoding failed.
    Encode(String),
    /// Drawing failed (plotters error).
    Draw(String),
    /// The embedded font could not be registered.
    Font,
}

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlotError::Io(e) => write!(f, "cannot write plot: {e}"),
            PlotError::Encode(e) => write!(f, "cannot encode plot as PNG: {e}"),
            PlotError::Draw(e) => write!(f, "cannot draw plot: {e}"),
            PlotError::Font => write!(f, "cannot load the embedded DejaVu Sans font"),
        }
    }
}

impl std::error::Error for PlotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PlotError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for PlotError {
    fn from(e: std::io::Error) -> Self {
        PlotError::Io(e)
    }
}

fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Registers DejaVu Sans as plotters' "sans-serif" family (once per process).
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        let regular = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok();
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
        regular
    });
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// Line colours (matplotlib's tab10).
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Runs of consecutive finite `(step, value)` points of one curve.
type Segments = Vec<Vec<(i64, f64)>>;

/// Splits a curve into runs of consecutive finite points (sorted by step).
fn segments(points: &[CurvePoint]) -> Segments {
    let mut sorted: Vec<&CurvePoint> = points.iter().collect();
    sorted.sort_by_key(|p| p.step);
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for p in sorted {
        if p.value.is_finite() {
            cur.push((i64::try_from(p.step).unwrap_or(i64::MAX), p.value));
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Axis ranges covering all finite points, padded; `None` if there is no finite point.
fn ranges(series: &[(&str, Segments)]) -> Option<(Range<i64>, Range<f64>)> {
    let pts = series.iter().flat_map(|(_, segs)| segs.iter().flatten());
    let (mut x0, mut x1, mut y0, mut y1) = (i64::MAX, i64::MIN, f64::INFINITY, f64::NEG_INFINITY);
    let mut any = false;
    for &(x, y) in pts {
        any = true;
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !any {
        return None;
    }
    if x1 == x0 {
        x0 = x0.saturating_sub(1);
        x1 = x1.saturating_add(1);
    }
    let span = y1 - y0;
    let pad = if span > 0.0 && span.is_finite() {
        span * 0.05
    } else if y0.abs() > 0.0 && y0.is_finite() {
        y0.abs() * 0.05
    } else {
        0.5
    };
    let (y0, y1) = (y0 - pad, y1 + pad);
    if !(y0.is_finite() && y1.is_finite() && y0 < y1) {
        return Some((x0..x1, -1.0..1.0));
    }
    Some((x0..x1, y0..y1))
}

/// Tick-label formatter for a y range: enough decimals for about six ticks, scientific
/// notation for very large or very small magnitudes.
fn y_formatter(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let span = (hi - lo).abs();
    let mag = lo.abs().max(hi.abs());
    let sci = mag >= 1e5 || (mag > 0.0 && mag < 1e-3);
    let decimals = if span > 0.0 && span.is_finite() { (-(span / 6.0).log10()).ceil().clamp(0.0, 6.0) as usize } else { 2 };
    move |v: &f64| {
        if sci { format!("{v:.2e}") } else { format!("{v:.decimals$}") }
    }
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(&str, &[CurvePoint])],
    legend_pos: SeriesLabelPosition,
) -> Result<(), PlotError> {
    let series: Vec<(&str, Segments)> = series.iter().map(|(name, pts)| (*name, segments(pts))).collect();
    let found = ranges(&series);
    let (xr, yr) = found.clone().unwrap_or((0..1, 0.0..1.0));
    let y_fmt = y_formatter(yr.start, yr.end);

    let mut builder = ChartBuilder::on(area);
    if !caption.is_empty() {
        builder.caption(caption, (FONT, 17));
    }
    let mut chart = builder.margin(12).x_label_area_size(40).y_label_area_size(60).build_cartesian_2d(xr, yr).map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(6)
        .y_labels(6)
        .y_label_formatter(&y_fmt)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(draw_err)?;

    if found.is_none() {
        let (w, h) = area.dim_in_pixel();
        let style = TextStyle::from((FONT, 16).into_font()).color(&RGBColor(120, 120, 120)).pos(Pos::new(HPos::Center, VPos::Center));
        area.draw(&Text::new("no data", ((w / 2) as i32, (h / 2) as i32), style)).map_err(draw_err)?;
        return Ok(());
    }

    let mut labelled = false;
    for (i, (name, segs)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let n_points: usize = segs.iter().map(Vec::len).sum();
        for (j, seg) in segs.iter().enumerate() {
            let drawn = chart.draw_series(LineSeries::new(seg.iter().copied(), color.stroke_width(2))).map_err(draw_err)?;
            if j == 0 && !name.is_empty() {
                labelled = true;
                drawn.label(*name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
            // Markers keep sparse curves (and isolated points) visible.
            if n_points <= 60 || seg.len() == 1 {
                chart.draw_series(seg.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(draw_err)?;
            }
        }
    }
    if labelled {
        chart
            .configure_series_labels()
            .position(legend_pos)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .label_font((FONT, 13))
            .draw()
            .map_err(draw_err)?;
    }
    Ok(())
}

/// Writes a PNG ([`PLOT_WIDTH`]×[`PLOT_HEIGHT`]) with `title` on top, the training `loss`
/// curve against the step in the left panel and each `(metric name, curve)` of `dev` in the
/// right panel, with a legend in each.
///
/// Non-finite values are skipped; empty curves give a panel saying "no data". The image is
/// fully rendered before `path` is created, so a drawing failure leaves no partial file.
pub fn plot_curves(path: &Path, title: &str, loss: &[CurvePoint], dev: &[(String, Vec<CurvePoint>)]) -> Result<(), PlotError> {
    render(path, PLOT_WIDTH, PLOT_HEIGHT, title, |body| {
        let (body_w, _) = body.dim_in_pixel();
        let (left, right) = body.split_horizontally(body_w / 2);
        draw_panel(&left, "training loss", "step", "loss", &[("train loss", loss)], SeriesLabelPosition::UpperRight)?;
        let dev_series: Vec<(&str, &[CurvePoint])> = dev.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
        draw_panel(&right, "dev metrics", "step", "value", &dev_series, SeriesLabelPosition::LowerRight)
    })
}

/// Writes a one-panel PNG (`width`×[`PLOT_HEIGHT`]) with `title` on top and one line per
/// `(name, points)` of `series` against the integer x of [`CurvePoint::step`] (described by
/// `x_desc`), with a legend; e.g. a score against a corruption's severity. Same rules as
/// [`plot_curves`] for non-finite values and partial files.
pub fn plot_lines(path: &Path, title: &str, x_desc: &str, y_desc: &str, series: &[(String, Vec<CurvePoint>)], width: u32) -> Result<(), PlotError> {
    render(path, width.max(200), PLOT_HEIGHT, title, |body| {
        let s: Vec<(&str, &[CurvePoint])> = series.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
        draw_panel(body, "", x_desc, y_desc, &s, SeriesLabelPosition::LowerLeft)
    })
}

/// Draw into a white `w`×`h` image under `title` with `draw`, then write it to `path` as PNG
/// (only once fully drawn).
fn render(
    path: &Path,
    w: u32,
    h: u32,
    title: &str,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), PlotError>,
) -> Result<(), PlotError> {
    ensure_font()?;
    let mut buf = vec![0u8; (w as usize) * (h as usize) * 3];
    {
        let backend = BitMapBackend::with_buffer_and_format(&mut buf, (w, h)).map_err(|e| PlotError::Draw(e.to_string()))?;
        let root = backend.into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let body = if title.is_empty() { root.clone() } else { root.titled(title, (FONT, 20)).map_err(draw_err)? };
        draw(&body)?;
        root.present().map_err(draw_err)?;
    }

    let file = File::create(path)?;
    let mut out = BufWriter::new(file);
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| PlotError::Encode(e.to_string()))?;
        writer.write_image_data(&buf).map_err(|e| PlotError::Encode(e.to_string()))?;
        writer.finish().map_err(|e| PlotError::Encode(e.to_string()))?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_split_at_non_finite_and_sort() {
        let pts = [CurvePoint::new(3, 1.0), CurvePoint::new(1, 2.0), CurvePoint::new(2, f64::NAN), CurvePoint::new(4, f64::INFINITY), CurvePoint::new(5, 0.5)];
        assert_eq!(segments(&pts), vec![vec![(1, 2.0)], vec![(3, 1.0)], vec![(5, 0.5)]]);
        assert!(segments(&[]).is_empty());
    }

    #[test]
    fn y_labels() {
        let f = y_formatter(0.0, 2.5);
        assert_eq!(f(&1.5), "1.5");
        let f = y_formatter(0.5, 0.9);
        assert_eq!(f(&0.55), "0.55");
        let f = y_formatter(0.0, 120.0);
        assert_eq!(f(&40.0), "40");
        let f = y_formatter(-1e300, 1e300);
        assert_eq!(f(&5e299), "5.00e299");
    }

    #[test]
    fn ranges_are_padded_and_never_empty() {
        let s = vec![("a", vec![vec![(5i64, 2.0)]])];
        let (x, y) = ranges(&s).unwrap();
        assert_eq!(x, 4..6);
        assert!(y.start < 2.0 && y.end > 2.0);
        let s = vec![("a", vec![vec![(0i64, 0.0), (10, 0.0)]])];
        let (x, y) = ranges(&s).unwrap();
        assert_eq!(x, 0..10);
        assert_eq!(y, -0.5..0.5);
        assert!(ranges(&[("a", vec![])]).is_none());
    }
}
