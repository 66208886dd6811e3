//! Curves pane cost: one 200×60 frame of a 1M-point series plus a 100k one (cull, decimate, y range,
//! draw), and the one-off smoothing in `PreparedSeries`. Run with `cargo bench --bench chart_render`
//! (plain std::time; no harness).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::Widget;
use sortie::tui::chart::decimate::decimate;
use sortie::tui::chart::{
    ChartStyles, CurveChart, Point, PrepareKey, PreparedSeries, RangeMode, Series, Smoothing,
};
use std::hint::black_box;
use std::time::Instant;

const FRAMES: usize = 20;

/// A noisy decaying loss with a few NaN gaps and spikes, over steps 0..1M whatever `n` is.
fn series(label: &str, n: usize) -> Series {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let every = 1_000_000 / n;
    let points = (0..n)
        .map(|i| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let noise = (rng >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            let step = (i * every) as f64;
            let value = match i % 50_000 {
                0 => f64::NAN,
                25_000 => 50.0,
                _ => 2.0 * (-step / 200_000.0).exp() + 0.2 + 0.1 * noise,
            };
            Point {
                step,
                time: Some(1.7e9 + step * 0.05),
                epoch: Some(step / 10_000.0),
                value,
            }
        })
        .collect();
    Series {
        label: label.into(),
        points,
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let big = series("train/loss", 1_000_000);
    let small = series("val/loss", 100_000);

    let ema = PrepareKey::default();
    let t = Instant::now();
    let pb = black_box(PreparedSeries::new(&big, ema));
    println!("prepare 1M points (EMA 0.6): {:.2} ms", ms(t));
    let t = Instant::now();
    black_box(PreparedSeries::new(
        &big,
        PrepareKey {
            smoothing: Smoothing::Twema(0.6),
            ..ema
        },
    ));
    println!("prepare 1M points (TWEMA 0.6): {:.2} ms", ms(t));
    // What the app pays when new points arrive: same settings, new version, buffers reused.
    let mut pb_live = PreparedSeries::new(&big, ema);
    let t = Instant::now();
    for v in 1..=5 {
        pb_live.refresh(&big, PrepareKey { version: v, ..ema });
    }
    println!(
        "re-prepare 1M points (EMA 0.6, new version): {:.2} ms",
        ms(t) / 5.0
    );
    let ps = PreparedSeries::new(&small, ema);

    let t = Instant::now();
    for _ in 0..FRAMES {
        black_box(decimate(pb.xs(), pb.main(), 0.0, 1e6, 400));
    }
    println!(
        "decimate 1M points to 400 dot columns: {:.2} ms",
        ms(t) / FRAMES as f64
    );

    let styles = ChartStyles {
        series: vec![
            Style::new().fg(Color::Cyan),
            Style::new().fg(Color::Magenta),
        ],
        raw: Style::new().add_modifier(Modifier::DIM),
        ..ChartStyles::default()
    };
    let area = Rect::new(0, 0, 200, 60);
    let mut buf = Buffer::empty(area);
    for (name, mode, window) in [
        ("", RangeMode::Robust, None),
        (" (fit y)", RangeMode::Fit, None),
        (
            " (zoom 10%)",
            RangeMode::Robust,
            Some((450_000.0, 550_000.0)),
        ),
    ] {
        let chart = CurveChart::new([&ps, &pb])
            .styles(styles.clone())
            .range_mode(mode)
            .x_window(window)
            .cursor(Some(500_000.0));
        // Warm-up frame: first-touch page faults are not the steady state.
        (&chart).render(area, &mut buf);
        let (mut total, mut best) = (0.0, f64::MAX);
        for _ in 0..FRAMES {
            let t = Instant::now();
            buf.reset();
            (&chart).render(area, &mut buf);
            black_box(&buf);
            let frame = ms(t);
            total += frame;
            best = best.min(frame);
        }
        println!(
            "chart render 1M points 200x60{name}: {:.2} ms/frame",
            total / FRAMES as f64
        );
        // On a shared machine the best frame shows the cost without time lost to other processes.
        println!("  best of {FRAMES} frames: {best:.2} ms");
    }
}
