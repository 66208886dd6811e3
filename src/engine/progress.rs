//! What a foreground `sortie run` prints: on a terminal, one line per finished step above a live status line
//! (done / running / failed / ETA); piped, plain lines only.

use crate::runlog::StepState;
use std::io::Write;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A status line redrawn in place.
    Tty,
    /// One line per event, nothing redrawn.
    Plain,
    Quiet,
}

impl ProgressMode {
    pub fn detect() -> ProgressMode {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            ProgressMode::Tty
        } else {
            ProgressMode::Plain
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub total: usize,
    pub done: usize,
    pub running: usize,
    pub failed: usize,
    pub other_final: usize,
    /// Mean seconds of the attempts that succeeded, for the ETA.
    pub mean_secs: Option<f64>,
    pub parallel: usize,
}

pub struct Progress {
    mode: ProgressMode,
    started: Instant,
    status_shown: bool,
}

fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Self {
        Progress {
            mode,
            started: Instant::now(),
            status_shown: false,
        }
    }

    /// A step changed state. Writes are best effort: a closed terminal (SSH hang-up) must not stop the run.
    pub fn step(&mut self, state: StepState, name: &str, detail: &str) {
        if self.mode == ProgressMode::Quiet {
            return;
        }
        let mut out = std::io::stdout().lock();
        if self.status_shown {
            let _ = write!(out, "\r\x1b[2K");
            self.status_shown = false;
        }
        let sep = if detail.is_empty() { "" } else { "  " };
        let _ = writeln!(
            out,
            "{:>7} {} {:<9} {name}{sep}{detail}",
            clock(self.started.elapsed().as_secs_f64()),
            state.glyph(),
            state.as_str()
        );
        let _ = out.flush();
    }

    /// Redraws the status line (terminal only).
    pub fn status(&mut self, c: &Counts) {
        if self.mode != ProgressMode::Tty {
            return;
        }
        let remaining = c.total.saturating_sub(c.done + c.failed + c.other_final);
        let eta = match c.mean_secs {
            Some(m) if remaining > 0 => {
                let waves = remaining.div_ceil(c.parallel.max(1));
                format!("  ETA {}", clock(m * waves as f64))
            }
            _ => String::new(),
        };
        let mut out = std::io::stdout().lock();
        let _ = write!(
            out,
            "\r\x1b[2K[{}/{}] ✓ {} done  ▶ {} running  ✗ {} failed{}  {}",
            c.done + c.failed + c.other_final,
            c.total,
            c.done,
            c.running,
            c.failed,
            eta,
            clock(self.started.elapsed().as_secs_f64())
        );
        let _ = out.flush();
        self.status_shown = true;
    }

    /// The last line of a run.
    pub fn summary(&mut self, text: &str) {
        if self.mode != ProgressMode::Quiet {
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }

    /// Ends the status line before the summary.
    pub fn finish(&mut self) {
        if self.status_shown {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out);
            self.status_shown = false;
        }
    }
}
