//! The Metrics pane: the selected metric of every step of the selected run, overlaid, through the curve
//! chart widget (smoothing, log y, x modes, cursor readout).

use super::ViewCtx;
use crate::tui::app::App;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Block;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, ctx: &ViewCtx, block: Block) {
    let Some(metric) = app.snapshot.metric.clone() else {
        super::hint(
            frame,
            area,
            ctx,
            block,
            "No metrics in this run yet. Steps append JSON lines such as {\"step\": 1, \"loss\": 0.3} to $SORTIE_METRICS.",
        );
        return;
    };
    let n = app.snapshot.metric_keys.len();
    let pos = app
        .snapshot
        .metric_keys
        .iter()
        .position(|k| *k == metric)
        .map(|p| p + 1)
        .unwrap_or(0);
    let block = block.title(Line::styled(
        format!(
            " {metric} ({pos}/{n}) · smoothing {:.1}{} ",
            app.metrics.smoothing,
            if app.metrics.log_y { " · log y" } else { "" }
        ),
        ctx.style("title"),
    ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    ctx.charts.render(frame, inner, app, ctx);
}
