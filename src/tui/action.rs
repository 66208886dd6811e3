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

/// Something the user can ask for. Its name, help and default keys are its row of [`ACTIONS`].
#[derive(Clone, Debug, PartialEq)]
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
    /// A key typed into the `:` line, the filter, the search or the finder.
    Edit(Edit),
    /// Redraw everything.
    Redraw,
}

/// One row of the action table: everything about an action that is not what it does (`App::update`
/// says that). The keymap parser, the default keymap, the `:` line and its completion, `?` help, which-key
/// hints, `--read-only` and the README's key table all read this table; nothing else lists actions.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The action itself (for ones that take an argument, with a stand-in one).
    pub action: Action,
    /// Its one spelling: in keymap files and at the `:` line.
    pub name: &'static str,
    /// One line for help and which-key hints.
    pub help: &'static str,
    /// Offered at the `:` line.
    pub command: bool,
    /// Changes a run or a job (asks first; disabled by `--read-only`).
    pub destructive: bool,
    /// Default keys as (keymap section, keys). `focus_pane`'s keys are its pane numbers.
    pub keys: &'static [(&'static str, &'static str)],
}

const fn spec(
    action: Action,
    name: &'static str,
    help: &'static str,
    keys: &'static [(&'static str, &'static str)],
) -> Spec {
    Spec {
        action,
        name,
        help,
        command: true,
        destructive: false,
        keys,
    }
}

/// Asks first, and `--read-only` disables it.
const fn destructive(mut s: Spec) -> Spec {
    s.destructive = true;
    s
}

/// Only a key: not offered at the `:` line (moving, answering a question, opening the line itself).
const fn key_only(mut s: Spec) -> Spec {
    s.command = false;
    s
}

/// Every action, in the order help lists them: what changes runs and opens things first, so a small
/// terminal still shows what matters.
pub const ACTIONS: &[Spec] = &[
    destructive(spec(
        Action::Cancel,
        "cancel",
        "cancel the selected run, step or job",
        &[("normal", "c")],
    )),
    destructive(spec(
        Action::Rerun,
        "rerun",
        "re-run the selected step",
        &[("normal", "r")],
    )),
    destructive(spec(
        Action::RerunDownstream,
        "rerun_downstream",
        "re-run the selected step and everything downstream",
        &[("normal", "R")],
    )),
    destructive(spec(
        Action::RetryFailed,
        "retry",
        "retry the failed steps of the selected run",
        &[("normal", "f")],
    )),
    destructive(spec(
        Action::Resume,
        "resume",
        "resume the selected run, whose engine died",
        &[("runs", "e")],
    )),
    spec(
        Action::Logs,
        "logs",
        "show the selection's logs",
        &[("normal", "l")],
    ),
    destructive(spec(
        Action::Launch,
        "run",
        "launch a pipeline in the background",
        &[("normal", "n")],
    )),
    key_only(spec(
        Action::Down,
        "down",
        "move down",
        &[("normal", "j"), ("normal", "<Down>")],
    )),
    key_only(spec(
        Action::Up,
        "up",
        "move up",
        &[("normal", "k"), ("normal", "<Up>")],
    )),
    key_only(spec(
        Action::Top,
        "top",
        "go to the top",
        &[("normal", "gg"), ("normal", "<Home>")],
    )),
    key_only(spec(
        Action::Bottom,
        "bottom",
        "go to the bottom",
        &[("normal", "G"), ("normal", "<End>")],
    )),
    key_only(spec(
        Action::PageUp,
        "page_up",
        "page up",
        &[("normal", "<PageUp>"), ("normal", "<C-u>")],
    )),
    key_only(spec(
        Action::PageDown,
        "page_down",
        "page down",
        &[("normal", "<PageDown>"), ("normal", "<C-d>")],
    )),
    key_only(spec(
        Action::Enter,
        "enter",
        "open or expand the selection",
        &[("normal", "<Enter>")],
    )),
    key_only(spec(
        Action::Back,
        "back",
        "close, clear the filter or collapse",
        &[("normal", "<Esc>")],
    )),
    spec(
        Action::Finder,
        "finder",
        "find a run, step, job, metric, study or trial",
        &[("normal", "<C-p>")],
    ),
    key_only(spec(
        Action::CommandMode,
        "command_mode",
        "open the : command line",
        &[("normal", ":")],
    )),
    spec(
        Action::Filter,
        "filter",
        "filter the list",
        &[("normal", "/")],
    ),
    spec(
        Action::Quit,
        "quit",
        "quit (runs keep going)",
        &[("normal", "q")],
    ),
    spec(
        Action::NextPane,
        "next_pane",
        "next pane",
        &[("normal", "<Tab>")],
    ),
    spec(
        Action::PrevPane,
        "prev_pane",
        "previous pane",
        &[("normal", "<S-Tab>")],
    ),
    spec(
        Action::Yank,
        "yank",
        "copy the selected id",
        &[("normal", "y")],
    ),
    spec(Action::Help, "help", "show the keys", &[("normal", "?")]),
    spec(
        Action::FocusPane(1),
        "focus_pane",
        "focus a pane by number",
        &[
            ("normal", "1"),
            ("normal", "2"),
            ("normal", "3"),
            ("normal", "4"),
            ("normal", "5"),
        ],
    ),
    key_only(spec(
        Action::Left,
        "left",
        "move left",
        &[
            ("metrics", "h"),
            ("metrics", "<Left>"),
            ("trials", "h"),
            ("trials", "<Left>"),
        ],
    )),
    key_only(spec(
        Action::Right,
        "right",
        "move right",
        &[
            ("metrics", "l"),
            ("metrics", "<Right>"),
            ("trials", "l"),
            ("trials", "<Right>"),
        ],
    )),
    spec(
        Action::Pin,
        "pin",
        "pin the run's curves into the metrics overlay",
        &[("runs", "p")],
    ),
    spec(
        Action::Sort,
        "sort",
        "sort by the next column",
        &[("jobs", "s"), ("trials", "s")],
    ),
    spec(
        Action::SortReverse,
        "sort_reverse",
        "reverse the sort order",
        &[("jobs", "S"), ("trials", "S")],
    ),
    spec(
        Action::SmoothMore,
        "smooth_more",
        "smooth the curves more",
        &[("metrics", "s")],
    ),
    spec(
        Action::SmoothLess,
        "smooth_less",
        "smooth the curves less",
        &[("metrics", "S")],
    ),
    spec(
        Action::ToggleLogY,
        "toggle_log_y",
        "toggle a log y-axis",
        &[("metrics", "L"), ("trials", "L")],
    ),
    spec(
        Action::CycleXAxis,
        "cycle_x_axis",
        "cycle the x-axis",
        &[("metrics", "x")],
    ),
    spec(
        Action::ToggleRaw,
        "toggle_raw",
        "show or hide the raw curve",
        &[("metrics", "o")],
    ),
    spec(
        Action::ToggleWrap,
        "toggle_wrap",
        "toggle line wrap",
        &[("logs", "w")],
    ),
    spec(
        Action::ToggleFollow,
        "toggle_follow",
        "follow the end of the log",
        &[("logs", "F")],
    ),
    spec(
        Action::ToggleStderr,
        "toggle_stderr",
        "switch between stdout and stderr",
        &[("logs", "e")],
    ),
    key_only(spec(
        Action::Search,
        "search",
        "search the log",
        &[("logs", "/")],
    )),
    spec(
        Action::SearchNext,
        "search_next",
        "next match",
        &[("logs", "n")],
    ),
    spec(
        Action::SearchPrev,
        "search_prev",
        "previous match",
        &[("logs", "N")],
    ),
    spec(
        Action::CycleChart,
        "cycle_chart",
        "next trials chart",
        &[("trials", "v")],
    ),
    spec(
        Action::CycleStateFilter,
        "cycle_state_filter",
        "show only trials in the next state",
        &[("trials", "t")],
    ),
    spec(
        Action::TogglePruned,
        "toggle_pruned",
        "hide or show pruned trials everywhere",
        &[("trials", "p")],
    ),
    spec(
        Action::Mark,
        "mark",
        "mark the trial for the intermediate chart",
        &[("trials", "<Space>")],
    ),
    spec(
        Action::NextParam,
        "next_param",
        "slice chart: next param",
        &[("trials", "]")],
    ),
    spec(
        Action::PrevParam,
        "prev_param",
        "slice chart: previous param",
        &[("trials", "[")],
    ),
    spec(
        Action::Theme(String::new()),
        "theme",
        "switch theme: dark, light, high-contrast, colour-blind",
        &[],
    ),
    spec(
        Action::Redraw,
        "redraw",
        "redraw the screen",
        &[("normal", "<C-l>")],
    ),
    key_only(spec(
        Action::Edit(Edit::Enter),
        "edit",
        "type into the line or the finder",
        &[],
    )),
    key_only(spec(
        Action::Confirm,
        "confirm",
        "yes",
        &[("confirm", "y"), ("confirm", "<Enter>")],
    )),
    key_only(spec(
        Action::Deny,
        "deny",
        "no",
        &[("confirm", "n"), ("confirm", "<Esc>")],
    )),
];

/// Keymap names of earlier versions, with today's: a user's file with one gets a located hint.
pub const RENAMED: &[(&str, &str)] = &[("retry_failed", "retry"), ("launch", "run")];

impl Action {
    /// This action's row of [`ACTIONS`].
    pub fn spec(&self) -> &'static Spec {
        let kind = std::mem::discriminant(self);
        // Every variant has a row (tested), so the fallback is never taken.
        ACTIONS
            .iter()
            .find(|s| std::mem::discriminant(&s.action) == kind)
            .unwrap_or(&ACTIONS[0])
    }

    /// Its one spelling (`rerun_downstream`).
    pub fn name(&self) -> &'static str {
        self.spec().name
    }

    /// Whether the action changes a run or a job (disabled by `--read-only`).
    pub fn is_destructive(&self) -> bool {
        self.spec().destructive
    }

    /// The action an action name and its argument (if any) spell, as keymap files and the `:` line write
    /// them. The error says what is wrong in words.
    pub fn from_name(name: &str, arg: Option<Arg>) -> Result<Action, String> {
        let Some(spec) = ACTIONS.iter().find(|s| s.name == name) else {
            if let Some((_, new)) = RENAMED.iter().find(|(old, _)| *old == name) {
                return Err(format!("`{name}` is now called `{new}`"));
            }
            let names = ACTIONS.iter().map(|s| s.name);
            return Err(format!(
                "unknown action `{name}`{}",
                crate::tui::config::suggestion(name, names)
            ));
        };
        match (&spec.action, arg) {
            (Action::Edit(_), _) => Err(format!("`{name}` is typed text, not something to bind")),
            (Action::FocusPane(_), Some(Arg::Number(n))) => match u8::try_from(n) {
                Ok(n @ 1..=5) => Ok(Action::FocusPane(n)),
                _ => Err(format!("no pane {n}: panes are 1 to 5")),
            },
            (Action::Theme(_), Some(Arg::Text(t))) if !t.is_empty() => Ok(Action::Theme(t)),
            (Action::FocusPane(_) | Action::Theme(_), _) => {
                Err(format!("`{name}` needs {}", argument_example(spec)))
            }
            (a, None) => Ok(a.clone()),
            (_, Some(_)) => Err(format!("`{name}` takes no argument")),
        }
    }

    /// Parses a `:` line: an action's name and its argument (`theme light`, `focus_pane 3`); `q` is
    /// `quit`, as in vi.
    pub fn parse_command(line: &str) -> Result<Action, String> {
        let mut words = line.split_whitespace();
        let Some(cmd) = words.next() else {
            return Err("empty command".into());
        };
        let cmd = if matches!(cmd, "q" | "q!") {
            "quit"
        } else {
            cmd
        };
        let arg = words.next().map(|w| match w.parse::<i64>() {
            Ok(n) => Arg::Number(n),
            Err(_) => Arg::Text(w.to_string()),
        });
        if words.next().is_some() {
            return Err(format!("{cmd}: too many arguments"));
        }
        match ACTIONS.iter().find(|s| s.name == cmd) {
            Some(s) if !s.command => Err(format!("{cmd} is a key, not a command (try :help)")),
            Some(_) => Action::from_name(cmd, arg).map_err(|e| e.replace('`', "")),
            None => Err(format!("unknown command {cmd:?} (try :help)")),
        }
    }
}

/// Text entry, as the line and the finder see keys.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Edit {
    Char(char),
    Backspace,
    /// Completes a `:` command.
    Tab,
    /// The finder's selection up / down.
    Up,
    Down,
    Enter,
    Esc,
}

/// An action's argument as a keymap file or the `:` line gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Number(i64),
    Text(String),
}

/// How to write an action that needs an argument, in a keymap file.
pub fn argument_example(spec: &Spec) -> &'static str {
    match spec.action {
        Action::FocusPane(_) => "a pane number: { focus_pane = 1 }, or :focus_pane 1",
        Action::Theme(_) => "a theme name: { theme = \"light\" }, or :theme light",
        _ => "no argument",
    }
}

/// `:` commands that complete `prefix`.
pub fn complete_command(prefix: &str) -> Vec<&'static str> {
    ACTIONS
        .iter()
        .filter(|s| s.command && s.name.starts_with(prefix))
        .map(|s| s.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_errors_say_what() {
        assert_eq!(Action::parse_command("q"), Ok(Action::Quit));
        assert_eq!(Action::parse_command("quit"), Ok(Action::Quit));
        assert_eq!(
            Action::parse_command("theme light"),
            Ok(Action::Theme("light".into()))
        );
        assert_eq!(
            Action::parse_command("focus_pane 3"),
            Ok(Action::FocusPane(3))
        );
        assert_eq!(Action::parse_command("retry"), Ok(Action::RetryFailed));
        assert_eq!(
            Action::parse_command("rerun_downstream"),
            Ok(Action::RerunDownstream)
        );
        assert!(
            Action::parse_command("focus_pane 9")
                .unwrap_err()
                .contains("1 to 5")
        );
        assert!(
            Action::parse_command("theme")
                .unwrap_err()
                .contains("needs a theme name")
        );
        assert!(
            Action::parse_command("frob")
                .unwrap_err()
                .contains("unknown command")
        );
        assert!(
            Action::parse_command("cancel now")
                .unwrap_err()
                .contains("takes no argument")
        );
        assert!(
            Action::parse_command("down")
                .unwrap_err()
                .contains("is a key")
        );
        assert_eq!(
            complete_command("re"),
            vec!["rerun", "rerun_downstream", "retry", "resume", "redraw"]
        );
    }

    #[test]
    fn every_variant_has_one_row_and_names_are_unique() {
        let mut names: Vec<&str> = ACTIONS.iter().map(|s| s.name).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "two rows share a name");
        for s in ACTIONS {
            assert_eq!(s.action.spec(), s, "{}", s.name);
            assert_eq!(
                Action::from_name(s.name, None).is_ok(),
                !matches!(
                    s.action,
                    Action::FocusPane(_) | Action::Theme(_) | Action::Edit(_)
                ),
                "{}",
                s.name
            );
        }
    }

    /// Every variant, by an exhaustive match: a new one fails to compile here until it is listed, and
    /// then this test fails until it has a row of its own.
    #[test]
    fn every_variant_has_a_row() {
        let sample = |a: &Action| -> Action {
            match a {
                Action::Quit
                | Action::Help
                | Action::CommandMode
                | Action::Filter
                | Action::Finder
                | Action::NextPane
                | Action::PrevPane
                | Action::FocusPane(_)
                | Action::Up
                | Action::Down
                | Action::PageUp
                | Action::PageDown
                | Action::Top
                | Action::Bottom
                | Action::Left
                | Action::Right
                | Action::Enter
                | Action::Back
                | Action::Launch
                | Action::Cancel
                | Action::Rerun
                | Action::RerunDownstream
                | Action::RetryFailed
                | Action::Resume
                | Action::Logs
                | Action::Yank
                | Action::Confirm
                | Action::Deny
                | Action::SmoothMore
                | Action::SmoothLess
                | Action::ToggleLogY
                | Action::CycleXAxis
                | Action::ToggleRaw
                | Action::ToggleWrap
                | Action::ToggleFollow
                | Action::ToggleStderr
                | Action::Search
                | Action::SearchNext
                | Action::SearchPrev
                | Action::Pin
                | Action::Sort
                | Action::SortReverse
                | Action::CycleChart
                | Action::CycleStateFilter
                | Action::TogglePruned
                | Action::Mark
                | Action::NextParam
                | Action::PrevParam
                | Action::Theme(_)
                | Action::Redraw
                | Action::Edit(_) => a.clone(),
            }
        };
        let all = [
            Action::Quit,
            Action::Help,
            Action::CommandMode,
            Action::Filter,
            Action::Finder,
            Action::NextPane,
            Action::PrevPane,
            Action::FocusPane(2),
            Action::Up,
            Action::Down,
            Action::PageUp,
            Action::PageDown,
            Action::Top,
            Action::Bottom,
            Action::Left,
            Action::Right,
            Action::Enter,
            Action::Back,
            Action::Launch,
            Action::Cancel,
            Action::Rerun,
            Action::RerunDownstream,
            Action::RetryFailed,
            Action::Resume,
            Action::Logs,
            Action::Yank,
            Action::Confirm,
            Action::Deny,
            Action::SmoothMore,
            Action::SmoothLess,
            Action::ToggleLogY,
            Action::CycleXAxis,
            Action::ToggleRaw,
            Action::ToggleWrap,
            Action::ToggleFollow,
            Action::ToggleStderr,
            Action::Search,
            Action::SearchNext,
            Action::SearchPrev,
            Action::Pin,
            Action::Sort,
            Action::SortReverse,
            Action::CycleChart,
            Action::CycleStateFilter,
            Action::TogglePruned,
            Action::Mark,
            Action::NextParam,
            Action::PrevParam,
            Action::Theme("x".into()),
            Action::Redraw,
            Action::Edit(Edit::Esc),
        ];
        assert_eq!(
            all.len(),
            ACTIONS.len(),
            "a variant without a row, or a row too many"
        );
        for a in &all {
            let row = ACTIONS
                .iter()
                .filter(|s| std::mem::discriminant(&s.action) == std::mem::discriminant(&sample(a)))
                .count();
            assert_eq!(row, 1, "{a:?} has {row} rows");
        }
    }

    #[test]
    fn renamed_actions_say_their_new_name() {
        assert_eq!(
            Action::from_name("retry_failed", None),
            Err("`retry_failed` is now called `retry`".into())
        );
        assert!(
            Action::from_name("rerun_downstrem", None)
                .unwrap_err()
                .contains("did you mean `rerun_downstream`")
        );
    }
}
