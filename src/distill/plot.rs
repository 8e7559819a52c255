//! The experiment plot: accuracy, its paired difference from `gold` and ECE per setting,
//! accuracy per generation, and training loss curves, as one SVG.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::distill::results::{ExperimentReport, ResultRow, SETTINGS};
use crate::distill::stats::{mean_interval, mean_std};
use crate::error::{Error, Result};

const COLORS: [RGBColor; SETTINGS.len()] = [
    RGBColor(90, 90, 90),
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(188, 189, 34),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 128),
];

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::runtime(format!("cannot draw the plot: {e}"))
}

/// A `[lo, hi]` range around `values` with a margin, never empty.
fn padded(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.15).max(0.005);
    (lo - pad, hi + pad)
}

/// Writes `path` (SVG, 1800×900): accuracy, Δ vs gold and ECE by setting above; accuracy by
/// generation and the loss curves below.
pub fn experiment_svg(r: &ExperimentReport, path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (1800, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (top, bottom) = root.split_vertically(450);
    let above = top.split_evenly((1, 3));
    let below = bottom.split_evenly((1, 2));
    per_setting(r, &above[0], "test accuracy by setting", |x| x.accuracy)?;
    differences(r, &above[1])?;
    per_setting(r, &above[2], "test ECE by setting (15 bins)", |x| x.ece)?;
    per_generation(r, &below[0])?;
    losses(r, &below[1])?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// A setting's index, its mean paired difference and its 95% interval (none with one seed).
type Difference = (usize, f64, Option<(f64, f64)>);

/// Per setting, the mean paired difference of test accuracy from `gold` (same seed) in points,
/// with its 95% t interval (none with one seed), against a line at 0.
fn differences(r: &ExperimentReport, area: &Panel<'_>) -> Result<()> {
    let gold = |seed: usize| {
        r.results
            .iter()
            .find(|x| x.setting == "gold" && x.seed == seed)
            .map(|x| x.accuracy)
    };
    let stats: Vec<Difference> = SETTINGS
        .iter()
        .enumerate()
        .skip(1)
        .filter_map(|(i, setting)| {
            let d: Vec<f64> = r
                .results
                .iter()
                .filter(|x| x.setting == *setting)
                .filter_map(|x| Some((x.accuracy - gold(x.seed)?) * 100.0))
                .collect();
            let first = *d.first()?;
            Some(match mean_interval(&d) {
                Some((m, ci)) => (i, m, Some((ci.lo, ci.hi))),
                None => (i, first, None),
            })
        })
        .collect();
    let ends = stats.iter().flat_map(|(_, m, ci)| {
        let (lo, hi) = ci.unwrap_or((*m, *m));
        [lo, hi, 0.0]
    });
    let (lo, hi) = padded(ends);
    let title = "Δ accuracy vs gold, points (paired, 95% CI)";
    let mut chart = settings_chart(area, title, (lo, hi), |y| format!("{y:+.1}"))?;
    let zero = vec![(-0.5, 0.0), (SETTINGS.len() as f64 - 0.5, 0.0)];
    chart
        .draw_series([PathElement::new(zero, BLACK.mix(0.5).stroke_width(1))])
        .map_err(plot_error)?;
    for (i, m, ci) in stats {
        let (x, color) = (i as f64, COLORS[i]);
        if let Some((a, b)) = ci {
            chart
                .draw_series([PathElement::new(
                    vec![(x, a), (x, b)],
                    color.stroke_width(3),
                )])
                .map_err(plot_error)?;
        }
        chart
            .draw_series([Circle::new((x, m), 6, color.filled())])
            .map_err(plot_error)?;
    }
    Ok(())
}

/// A chart with one column per setting on x and `lo..hi` on y, its mesh drawn.
fn settings_chart<'a, 'b>(
    area: &'a Panel<'b>,
    title: &str,
    (lo, hi): (f64, f64),
    y_label: impl Fn(&f64) -> String,
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.5f64..(SETTINGS.len() as f64 - 0.5), lo..hi)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_labels(9)
        .x_label_formatter(&setting_label)
        .y_label_formatter(&y_label)
        .draw()
        .map_err(plot_error)?;
    Ok(chart)
}

/// The name of the setting at an integer x, for the axis.
fn setting_label(x: &f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && (0.0..SETTINGS.len() as f64).contains(&i) {
        SETTINGS[i as usize].to_string()
    } else {
        String::new()
    }
}

type Panel<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Each seed as a small dot, the mean as a large one with a ±1 std bar.
fn per_setting(
    r: &ExperimentReport,
    area: &Panel<'_>,
    title: &str,
    f: fn(&ResultRow) -> f64,
) -> Result<()> {
    let (lo, hi) = padded(r.results.iter().map(f));
    let mut chart = settings_chart(area, title, (lo, hi), |y| format!("{y:.3}"))?;
    for (i, setting) in SETTINGS.iter().enumerate() {
        let color = COLORS[i];
        let v: Vec<f64> = r
            .results
            .iter()
            .filter(|x| x.setting == *setting)
            .map(f)
            .collect();
        let x = i as f64;
        chart
            .draw_series(
                v.iter()
                    .map(|&y| Circle::new((x + 0.12, y), 3, color.mix(0.6).filled())),
            )
            .map_err(plot_error)?;
        let (m, sd) = mean_std(&v);
        if m.is_finite() {
            chart
                .draw_series([
                    PathElement::new(vec![(x, m - sd), (x, m + sd)], color.stroke_width(2)),
                    PathElement::new(
                        vec![(x - 0.06, m - sd), (x + 0.06, m - sd)],
                        color.stroke_width(2),
                    ),
                    PathElement::new(
                        vec![(x - 0.06, m + sd), (x + 0.06, m + sd)],
                        color.stroke_width(2),
                    ),
                ])
                .map_err(plot_error)?;
            chart
                .draw_series([Circle::new((x, m), 6, color.filled())])
                .map_err(plot_error)?;
        }
    }
    Ok(())
}

/// Mean test accuracy of each self-distillation generation (generation 0 = `augmented`), with
/// the ensemble-taught last generation beside it and `gold` as a dashed reference.
fn per_generation(r: &ExperimentReport, area: &Panel<'_>) -> Result<()> {
    let gens = r.config.generations;
    let mean_at = |setting: &[&str], g: usize| {
        let v: Vec<f64> = r
            .curves
            .iter()
            .filter(|c| setting.contains(&c.setting.as_str()) && c.generation == g)
            .map(|c| c.metrics.accuracy)
            .collect();
        mean_std(&v).0
    };
    let chain: Vec<(f64, f64)> = (0..=gens)
        .map(|g| (g as f64, mean_at(&["augmented", "self-distill"], g)))
        .collect();
    let ensemble = mean_at(&["ensemble"], gens);
    let gold = mean_at(&["gold"], 0);
    let (lo, hi) = padded(chain.iter().map(|p| p.1).chain([ensemble, gold]));
    let mut chart = ChartBuilder::on(area)
        .caption("mean test accuracy by generation", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.3f64..gens as f64 + 0.3, lo..hi)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_labels(gens + 1)
        .x_desc("generation")
        .x_label_formatter(&|x| format!("{}", x.round() as i64))
        .y_label_formatter(&|y| format!("{y:.3}"))
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(LineSeries::new(
            [(-0.3, gold), (gens as f64 + 0.3, gold)],
            COLORS[0].stroke_width(1),
        ))
        .map_err(plot_error)?
        .label("gold (no augmentation)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], COLORS[0]));
    chart
        .draw_series(LineSeries::new(chain.clone(), COLORS[2].stroke_width(2)))
        .map_err(plot_error)?
        .label("augmented → self-distill (teacher: previous generation)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], COLORS[2]));
    chart
        .draw_series(chain.iter().map(|&p| Circle::new(p, 5, COLORS[2].filled())))
        .map_err(plot_error)?;
    chart
        .draw_series([TriangleMarker::new(
            (gens as f64, ensemble),
            8,
            COLORS[3].filled(),
        )])
        .map_err(plot_error)?
        .label("last generation taught by an ensemble of all earlier ones")
        .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, COLORS[3].filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// Mean training loss per epoch of seed 0, one line per setting and generation, against the
/// fraction of training done (`gold` makes more, shorter epochs than the augmented settings).
fn losses(r: &ExperimentReport, area: &Panel<'_>) -> Result<()> {
    let lines: Vec<_> = r.curves.iter().filter(|c| c.seed == 0).collect();
    let (lo, hi) = padded(lines.iter().flat_map(|c| c.losses.iter().copied()));
    let mut chart = ChartBuilder::on(area)
        .caption("training loss (seed 0)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..1.02f64, lo.max(0.0)..hi)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_labels(6)
        .x_desc("fraction of training (end of each epoch)")
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_label_formatter(&|y| format!("{y:.3}"))
        .draw()
        .map_err(plot_error)?;
    for c in lines {
        let i = SETTINGS.iter().position(|s| *s == c.setting).unwrap_or(0);
        let color = COLORS[i];
        let width = if c.setting == "self-distill" {
            c.generation as u32
        } else {
            2
        };
        let points: Vec<(f64, f64)> = c
            .losses
            .iter()
            .enumerate()
            .map(|(e, &l)| ((e as f64 + 1.0) / c.losses.len() as f64, l))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(width.max(1))))
            .map_err(plot_error)?
            .label(format!("{} (generation {})", c.setting, c.generation))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}
