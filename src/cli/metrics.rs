//! `sortie metrics` (a summary per step and metric) and `sortie plot` (a terminal chart, steps overlaid).

use super::{EXIT_OK, open_index, resolve_run};
use crate::runlog::Project;
use crate::util::user_error;
use clap::Args;
use color_eyre::eyre::{Result, eyre};
use textplots::{Chart, ColorPlot, Plot, Shape};

#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// `[RUN] [STEP]`: default the latest run, all steps.
    #[arg(num_args = 0..=2, value_names = ["RUN", "STEP"])]
    pub args: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// `[RUN] METRIC`: default the latest run.
    #[arg(num_args = 1..=2, required = true, value_names = ["RUN", "METRIC"])]
    pub args: Vec<String>,
    /// Only these steps (a step name matches all its instances); repeat or comma-separate.
    #[arg(long, value_delimiter = ',')]
    pub step: Vec<String>,
    /// Chart width in terminal columns (16 to 1000; the chart library needs 16, more is only memory).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(16..=1000))]
    pub width: u32,
    /// Chart height in terminal rows (3 to 500).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(3..=500))]
    pub height: u32,
}

pub fn metrics(project: &Project, a: MetricsArgs) -> Result<i32> {
    let mut index = open_index(project)?;
    // One argument is a run if it names one, else a step of the latest run.
    let (run_spec, step) = match a.args.as_slice() {
        [] => (None, None),
        [x] => {
            resolve_run(project, &mut index, None)?;
            if index.resolve_run(Some(x)).is_ok() {
                (Some(x.as_str()), None)
            } else {
                (None, Some(x.as_str()))
            }
        }
        [r, s] => (Some(r.as_str()), Some(s.as_str())),
        _ => return Err(user_error("usage: sortie metrics [RUN] [STEP]")),
    };
    let run = resolve_run(project, &mut index, run_spec)?;
    let step_name = match step {
        Some(s) => Some(super::logs::find_step_or_group(&index, &run.id, s)?),
        None => None,
    };
    let mut rows = index
        .metric_summaries(&run.id, None)
        .map_err(|e| eyre!("{e}"))?;
    if let Some(sel) = &step_name {
        rows.retain(|r| sel.contains(&r.step));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(EXIT_OK);
    }
    if rows.is_empty() {
        println!(
            "run {} has no metrics yet (steps write JSON lines to $SORTIE_METRICS)",
            run.id
        );
        return Ok(EXIT_OK);
    }
    let w = rows
        .iter()
        .map(|r| r.step.chars().count())
        .max()
        .unwrap_or(4)
        .min(50);
    println!(
        "{:<w$}  {:>3}  {:<16} {:>7} {:>12} {:>12} {:>12}",
        "STEP", "TRY", "METRIC", "POINTS", "LAST", "MIN", "MAX"
    );
    for r in rows {
        println!(
            "{:<w$}  {:>3}  {:<16} {:>7} {:>12.6} {:>12.6} {:>12.6}",
            r.step, r.attempt, r.key, r.count, r.last, r.min, r.max
        );
    }
    Ok(EXIT_OK)
}

/// Keeps at most `n` points, preserving each bucket's minimum and maximum so spikes stay visible.
fn decimate(points: Vec<(f32, f32)>, n: usize) -> Vec<(f32, f32)> {
    if points.len() <= n || n < 4 {
        return points;
    }
    let per = points.len().div_ceil(n / 2);
    let mut out = Vec::with_capacity(n);
    for chunk in points.chunks(per) {
        let lo = chunk.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        let hi = chunk.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        if lo.0 <= hi.0 {
            out.extend([*lo, *hi]);
        } else {
            out.extend([*hi, *lo]);
        }
    }
    out
}

const PALETTE: [(u8, u8, u8); 6] = [
    (86, 180, 233),
    (230, 159, 0),
    (0, 158, 115),
    (204, 121, 167),
    (240, 228, 66),
    (213, 94, 0),
];

pub fn plot(project: &Project, a: PlotArgs) -> Result<i32> {
    let (run_spec, metric) = match a.args.as_slice() {
        [m] => (None, m.as_str()),
        [r, m] => (Some(r.as_str()), m.as_str()),
        _ => return Err(user_error("usage: sortie plot [RUN] METRIC")),
    };
    let mut index = open_index(project)?;
    let run = resolve_run(project, &mut index, run_spec)?;
    let summaries = index
        .metric_summaries(&run.id, None)
        .map_err(|e| eyre!("{e}"))?;
    let known: Vec<String> = {
        let mut k: Vec<String> = summaries.iter().map(|s| s.key.clone()).collect();
        k.sort();
        k.dedup();
        k
    };
    if !known.iter().any(|k| k == metric) {
        return Err(user_error(format!(
            "run {} has no metric {metric:?} (metrics: {})",
            run.id,
            if known.is_empty() {
                "none yet".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let mut wanted: Vec<String> = Vec::new();
    for s in &a.step {
        wanted.extend(super::logs::find_step_or_group(&index, &run.id, s)?);
    }
    let mut steps: Vec<String> = summaries
        .iter()
        .filter(|s| s.key == metric && (wanted.is_empty() || wanted.contains(&s.step)))
        .map(|s| s.step.clone())
        .collect();
    steps.dedup();
    let mut series = Vec::new();
    for step in &steps {
        let pts = index
            .metric_points(&run.id, step, None, metric)
            .map_err(|e| eyre!("{e}"))?;
        let pts: Vec<(f32, f32)> = pts
            .iter()
            .filter(|p| p.value.is_finite())
            .map(|p| (p.x as f32, p.value as f32))
            .collect();
        if !pts.is_empty() {
            series.push((step.clone(), decimate(pts, (a.width as usize) * 4)));
        }
    }
    if series.is_empty() {
        return Err(user_error(format!("no finite points of {metric} to draw")));
    }
    let xmin = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(f32::INFINITY, f32::min);
    let mut xmax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(f32::NEG_INFINITY, f32::max);
    if xmax <= xmin {
        xmax = xmin + 1.0;
    }
    use std::io::IsTerminal;
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let shapes: Vec<Shape> = series.iter().map(|s| Shape::Lines(&s.1)).collect();
    println!("{metric} — run {} ({} series)", run.id, shapes.len());
    let mut chart = Chart::new(a.width * 2, a.height * 4, xmin, xmax);
    let mut c: &mut Chart = &mut chart;
    for (i, shape) in shapes.iter().enumerate() {
        c = if color {
            let (r, g, b) = PALETTE[i % PALETTE.len()];
            c.linecolorplot(shape, rgb::RGB8 { r, g, b })
        } else {
            c.lineplot(shape)
        };
    }
    c.display();
    for (i, (name, pts)) in series.iter().enumerate() {
        let last = pts.last().map(|p| p.1).unwrap_or(f32::NAN);
        if color {
            let (r, g, b) = PALETTE[i % PALETTE.len()];
            println!("  \x1b[38;2;{r};{g};{b}m━━\x1b[0m {name}  (last {last})");
        } else {
            println!("  [{}] {name}  (last {last})", i + 1);
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimation_keeps_extremes() {
        let pts: Vec<(f32, f32)> = (0..10_000)
            .map(|i| (i as f32, if i == 5000 { 99.0 } else { 0.0 }))
            .collect();
        let d = super::decimate(pts, 100);
        assert!(d.len() <= 100);
        assert!(d.iter().any(|p| p.1 == 99.0));
    }
}
