//! The TUI's whole vocabulary. Keymaps name these actions, the `:` command line parses them, and the app's
//! `update` is the only place that gives them meaning. Engine and data events arrive as [`crate::tui`]
//! messages of their own, never as key presses.

use serde::Deserialize;

/// The panes, in the order `1`–`5` and Tab visit them.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Pane {
    Runs,
    Jobs,
    Metrics,
    Logs,
    Trials,
}

impl Pane {
    pub const ALL: [Pane; 5] = [
        Pane::Runs,
        Pane::Jobs,
        Pane::Metrics,
        Pane::Logs,
        Pane::Trials,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Runs => "Runs",
            Pane::Jobs => "Jobs",
            Pane::Metrics => "Metrics",
            Pane::Logs => "Logs",
            Pane::Trials => "Trials",
        }
    }

    pub fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// Something the user can ask for. Keymap files use the snake_case names (`cancel`, `next_pane`, …).
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Quit,
    /// Help generated from the active keymap.
    Help,
    /// Open the `:` command line.
    CommandMode,
    /// Filter the focused list.
    Filter,
    /// The fuzzy finder over runs, steps, jobs, metrics and studies.
    Finder,
    NextPane,
    PrevPane,
    /// Focus a pane by its number, 1 to 5.
    FocusPane(u8),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Left,
    Right,
    /// Open / expand the selection.
    Enter,
    /// Close the overlay, clear the filter, or collapse.
    Back,
    /// Launch a pipeline (asks which file).
    Launch,
    /// Cancel the selected run, step or job (asks first).
    Cancel,
    /// Re-run the selected step (asks first).
    Rerun,
    /// Re-run the selected step and everything downstream (asks first).
    RerunDownstream,
    /// Retry the failed steps of the selected run (asks first).
    RetryFailed,
    /// Start a background engine for the selected run, whose engine died (asks first).
    Resume,
    /// Show the selected step's or job's logs.
    Logs,
    /// Copy the selection's id to the clipboard (OSC 52, works over SSH).
    Yank,
    /// Answer yes / no to a confirmation.
    Confirm,
    Deny,
    /// Metrics pane: smoothing weight up / down, log-y, x-axis mode, raw line, cursor.
    SmoothMore,
    SmoothLess,
    ToggleLogY,
    CycleXAxis,
    ToggleRaw,
    /// Logs pane: wrap, follow (jump to end), stdout / stderr, search.
    ToggleWrap,
    ToggleFollow,
    ToggleStderr,
    Search,
    SearchNext,
    SearchPrev,
    /// Pin the selected run: its curves join the metrics overlay (again to unpin).
    Pin,
    /// Jobs pane: sort by the next column; reverse the order.
    Sort,
    SortReverse,
    /// Trials pane: next chart (history, intermediate, slice, importance, Pareto front).
    CycleChart,
    /// Trials pane: show only trials in the next state (all, complete, running, pruned, failed, waiting).
    CycleStateFilter,
    /// Trials pane: hide or show pruned trials in the leaderboard and every chart.
    TogglePruned,
    /// Trials pane: mark the selected trial for the intermediate-values chart (again to unmark).
    Mark,
    /// Trials pane: the slice chart's next / previous param.
    NextParam,
    PrevParam,
    /// Switch theme by name (`:theme light`).
    Theme(String),
    /// Redraw everything.
    Redraw,
}

impl Action {
    /// Whether the action changes a run or a job (disabled by `--read-only`).
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            Action::Launch
                | Action::Cancel
                | Action::Rerun
                | Action::RerunDownstream
                | Action::RetryFailed
                | Action::Resume
        )
    }

    /// Parses a `:` command: `quit`, `q`, `cancel`, `rerun`, `rerun!` (downstream), `retry`, `run`,
    /// `theme NAME`, `help`, `logs`, `pane N`.
    pub fn parse_command(line: &str) -> Result<Action, String> {
        let mut words = line.split_whitespace();
        let Some(cmd) = words.next() else {
            return Err("empty command".into());
        };
        let arg = words.next();
        let a = match (cmd, arg) {
            ("q" | "quit" | "q!", None) => Action::Quit,
            ("help" | "h", None) => Action::Help,
            ("cancel", None) => Action::Cancel,
            ("rerun", None) => Action::Rerun,
            ("rerun!" | "rerun-downstream", None) => Action::RerunDownstream,
            ("retry", None) => Action::RetryFailed,
            ("resume", None) => Action::Resume,
            ("run" | "launch", None) => Action::Launch,
            ("logs", None) => Action::Logs,
            ("yank", None) => Action::Yank,
            ("redraw", None) => Action::Redraw,
            ("theme", Some(name)) => Action::Theme(name.to_string()),
            ("theme", None) => return Err("theme needs a name, e.g. :theme light".into()),
            ("pane", Some(n)) => match n.parse::<u8>() {
                Ok(n @ 1..=5) => Action::FocusPane(n),
                _ => return Err(format!("no pane {n}: panes are 1 to 5")),
            },
            ("pane", None) => return Err("pane needs a number, 1 to 5".into()),
            (c, Some(_)) if COMMANDS.iter().any(|(name, _)| *name == c) => {
                return Err(format!("{c}: too many arguments"));
            }
            (c, _) => return Err(format!("unknown command {c:?} (try :help)")),
        };
        if words.next().is_some() {
            return Err(format!("{cmd}: too many arguments"));
        }
        Ok(a)
    }
}

/// The `:` commands with a one-line description, for completion and help.
pub const COMMANDS: &[(&str, &str)] = &[
    ("quit", "leave sortie (runs keep going)"),
    ("help", "show the keys"),
    ("run", "launch a pipeline"),
    ("cancel", "cancel the selection"),
    ("rerun", "re-run the selected step"),
    (
        "rerun!",
        "re-run the selected step and everything downstream",
    ),
    ("retry", "retry the failed steps of the selected run"),
    ("resume", "resume the selected run, whose engine died"),
    ("logs", "show the selected step's logs"),
    ("yank", "copy the selected id"),
    (
        "theme",
        "switch theme: dark, light, high-contrast, colour-blind",
    ),
    ("pane", "focus pane 1-5"),
    ("redraw", "redraw the screen"),
];

/// Commands that complete `prefix`.
pub fn complete_command(prefix: &str) -> Vec<&'static str> {
    COMMANDS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_errors_say_what() {
        assert_eq!(Action::parse_command("q"), Ok(Action::Quit));
        assert_eq!(
            Action::parse_command("theme light"),
            Ok(Action::Theme("light".into()))
        );
        assert_eq!(Action::parse_command("pane 3"), Ok(Action::FocusPane(3)));
        assert!(
            Action::parse_command("pane 9")
                .unwrap_err()
                .contains("1 to 5")
        );
        assert!(
            Action::parse_command("frob")
                .unwrap_err()
                .contains("unknown command")
        );
        assert!(
            Action::parse_command("cancel now")
                .unwrap_err()
                .contains("too many")
        );
        assert_eq!(
            complete_command("re"),
            vec!["rerun", "rerun!", "retry", "resume", "redraw"]
        );
    }

    #[test]
    fn keymap_names_deserialize() {
        let a: Action = serde_json::from_str("\"rerun_downstream\"").unwrap();
        assert_eq!(a, Action::RerunDownstream);
        let a: Action = serde_json::from_str("{\"focus_pane\": 2}").unwrap();
        assert_eq!(a, Action::FocusPane(2));
    }
}
