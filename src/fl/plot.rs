//! PNG plots (plotters): test accuracy per round of federated runs, the clients' class
//! histograms, and per-epoch panels (loss, accuracy) of fine-tuning runs.
//!
//! Text is drawn with a TrueType font read from the system (DejaVu Sans or Liberation Sans:
//! Debian's `fonts-dejavu-core` or `fonts-liberation`), or from the file named by the
//! `PRIFFT_FONT` environment variable.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// Where fonts usually are on Debian, Ubuntu, Fedora and Arch.
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

/// Register a sans-serif font with plotters once per process.
fn ensure_font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(p) = std::env::var_os("PRIFFT_FONT") {
            candidates.push(p.into());
        }
        candidates.extend(FONT_CANDIDATES.iter().map(PathBuf::from));
        for path in &candidates {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps fonts for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                return plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                    .map_err(|_| format!("{} is not a TrueType font", path.display()));
            }
        }
        Err("no TrueType font for the plot's text: install Debian's fonts-dejavu-core \
             (apt-get install fonts-dejavu-core) or set PRIFFT_FONT to a .ttf file"
            .to_string())
    })
    .clone()
    .map_err(Error::Data)
}

fn draw_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Data(format!("drawing {}: {e}", path.display()))
}

type Chart<'a> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draw the series' legend at `position` and write the file.
fn legend_and_save(
    chart: &mut Chart<'_>,
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    position: SeriesLabelPosition,
    path: &Path,
) -> Result<()> {
    legend(chart, position, path)?;
    root.present().map_err(|e| draw_error(path, e))
}

/// Draw the series' legend at `position`.
fn legend(chart: &mut Chart<'_>, position: SeriesLabelPosition, path: &Path) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw_error(path, e))
}

/// One line of an accuracy plot: a label and, per seed, the accuracy after each round.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// `runs[seed][round]`, fractions in [0, 1].
    pub runs: Vec<Vec<f64>>,
}

/// Test accuracy (%) against the round: the mean over seeds as a line, the range over seeds
/// as a shaded band.
///
/// # Errors
/// No font available (the message says what to install), or the file cannot be written.
pub fn accuracy_vs_round(path: &Path, title: &str, series: &[Series]) -> Result<()> {
    ensure_font()?;
    let rounds = series.iter().flat_map(|s| s.runs.iter().map(Vec::len)).max().unwrap_or(0);
    let all = series.iter().flat_map(|s| s.runs.iter().flatten().copied());
    let lowest = all.fold(1.0f64, f64::min);
    let y_min = ((lowest * 100.0 - 2.0) / 5.0).floor().max(0.0) * 5.0;
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(1f64..rounds.max(2) as f64, y_min..100f64)
        .map_err(|e| draw_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc("test accuracy (%)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|e| draw_error(path, e))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let len = s.runs.iter().map(Vec::len).min().unwrap_or(0);
        let at = |r: usize, f: fn(f64, f64) -> f64, init: f64| {
            s.runs.iter().map(|run| run[r] * 100.0).fold(init, f)
        };
        let mean: Vec<(f64, f64)> = (0..len)
            .map(|r| ((r + 1) as f64, at(r, |a, b| a + b, 0.0) / s.runs.len() as f64))
            .collect();
        if s.runs.len() > 1 {
            let mut band: Vec<(f64, f64)> =
                (0..len).map(|r| ((r + 1) as f64, at(r, f64::max, f64::MIN))).collect();
            band.extend((0..len).rev().map(|r| ((r + 1) as f64, at(r, f64::min, f64::MAX))));
            chart
                .draw_series(std::iter::once(Polygon::new(band, color.mix(0.15))))
                .map_err(|e| draw_error(path, e))?;
        }
        chart
            .draw_series(LineSeries::new(mean, color.stroke_width(2)))
            .map_err(|e| draw_error(path, e))?
            .label(&s.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    legend_and_save(&mut chart, &root, SeriesLabelPosition::LowerRight, path)
}

/// Stacked bars: one bar per client, one colour per class (`histogram[client][class]`);
/// `class_names` label the legend (class numbers where it is shorter).
///
/// # Errors
/// No font available, or the file cannot be written.
pub fn class_histogram(
    path: &Path,
    title: &str,
    histogram: &[Vec<usize>],
    class_names: &[&str],
) -> Result<()> {
    ensure_font()?;
    let clients = histogram.len();
    let classes = histogram.first().map_or(0, Vec::len);
    let tallest = histogram.iter().map(|h| h.iter().sum::<usize>()).max().unwrap_or(1).max(1);
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .right_y_label_area_size(0)
        // Room on the right for the legend.
        .build_cartesian_2d(-0.5f64..clients as f64 * 1.3 + 0.5, 0f64..tallest as f64 * 1.05)
        .map_err(|e| draw_error(path, e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels((clients * 13 / 10 + 1).min(60))
        .x_label_formatter(&|x| {
            let c = x.round();
            if (c - x).abs() < 1e-6 && c >= 0.0 && (c as usize) < clients {
                format!("{c}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{}", y.round() as i64))
        .x_desc("client")
        .y_desc("training samples")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|e| draw_error(path, e))?;
    for class in 0..classes {
        let color = Palette99::pick(class).to_rgba();
        let bars = histogram.iter().enumerate().map(|(c, h)| {
            let below: usize = h[..class].iter().sum();
            let x = c as f64;
            Rectangle::new(
                [(x - 0.38, below as f64), (x + 0.38, (below + h[class]) as f64)],
                color.filled(),
            )
        });
        chart
            .draw_series(bars)
            .map_err(|e| draw_error(path, e))?
            .label(
                class_names.get(class).map_or_else(|| format!("class {class}"), |n| n.to_string()),
            )
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], color.filled()));
    }
    legend_and_save(&mut chart, &root, SeriesLabelPosition::UpperRight, path)
}

/// One panel of [`panels_per_epoch`]: a y-axis label and named series, one value per epoch
/// (epoch 0 = before training, where a series has it).
#[derive(Clone, Debug)]
pub struct Panel {
    /// The y-axis label.
    pub y_desc: String,
    /// (legend text, (epoch, value) points).
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Side-by-side line panels against the epoch (e.g. loss on the left, accuracy on the right),
/// one PNG.
///
/// # Errors
/// No font available, or the file cannot be written.
pub fn panels_per_epoch(path: &Path, title: &str, panels: &[Panel]) -> Result<()> {
    panels_over(path, title, "epoch", panels)
}

/// As [`panels_per_epoch`] over any integer x axis named `x_desc` (e.g. training steps); at most
/// 11 x labels.
///
/// # Errors
/// As [`panels_per_epoch`].
pub fn panels_over(path: &Path, title: &str, x_desc: &str, panels: &[Panel]) -> Result<()> {
    ensure_font()?;
    let root =
        BitMapBackend::new(path, (560 * panels.len().max(1) as u32, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|e| draw_error(path, e))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (panel, area) in panels.iter().zip(&areas) {
        let points = panel.series.iter().flat_map(|(_, p)| p.iter());
        let (mut x_max, mut y_min, mut y_max) = (1f64, f64::MAX, f64::MIN);
        for &(x, y) in points {
            x_max = x_max.max(x);
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
        if y_min > y_max {
            (y_min, y_max) = (0.0, 1.0);
        }
        let pad = ((y_max - y_min) * 0.08).max(1e-3);
        let mut chart = ChartBuilder::on(area)
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_max, (y_min - pad)..(y_max + pad))
            .map_err(|e| draw_error(path, e))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(panel.y_desc.as_str())
            .x_labels((x_max as usize + 1).min(11))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(|e| draw_error(path, e))?;
        for (i, (label, pts)) in panel.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(|e| draw_error(path, e))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| draw_error(path, e))?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight, path)?;
    }
    root.present().map_err(|e| draw_error(path, e))
}
