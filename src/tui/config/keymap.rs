//! The keymap: one trie per mode, built from the embedded `keymaps/default.toml` with the user's
//! `keymap.toml` merged over it.
//!
//! Lookup is by the whole pending sequence, so the app (or [`KeyBuffer`]) keeps the keys pressed so far
//! and shows the [`Lookup::Pending`] hints as a which-key popup while a chord is half typed.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use indexmap::IndexMap;
use toml::de::{DeTable, DeValue};

use super::keys::{Key, KeySeq};
use super::{Source, suggestion};
use crate::tui::action::{Action, Pane};

const DEFAULT_KEYMAP: &str = include_str!("../../../keymaps/default.toml");
const DEFAULT_LABEL: &str = "keymaps/default.toml (built-in)";

/// Which bindings apply. `Pane(p)` is normal mode with pane `p` focused: its section shadows `[normal]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Normal,
    Pane(Pane),
    Confirm,
}

impl From<Pane> for Mode {
    fn from(p: Pane) -> Mode {
        Mode::Pane(p)
    }
}

impl Mode {
    /// Every keymap-file section, in file order.
    pub const ALL: [Mode; 7] = [
        Mode::Normal,
        Mode::Pane(Pane::Runs),
        Mode::Pane(Pane::Jobs),
        Mode::Pane(Pane::Metrics),
        Mode::Pane(Pane::Logs),
        Mode::Pane(Pane::Trials),
        Mode::Confirm,
    ];

    pub fn section(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Pane(Pane::Runs) => "runs",
            Mode::Pane(Pane::Jobs) => "jobs",
            Mode::Pane(Pane::Metrics) => "metrics",
            Mode::Pane(Pane::Logs) => "logs",
            Mode::Pane(Pane::Trials) => "trials",
            Mode::Confirm => "confirm",
        }
    }

    fn from_section(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.section() == name)
    }
}

/// What a pressed key sequence means in a mode.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup {
    Matched(Action),
    /// The keys start a chord; the hints are the possible next keys with what each does (an action's
    /// description, or `+N bindings` for a longer chord).
    Pending(Vec<(Key, String)>),
    NotFound,
    /// Esc was pressed while a chord was pending.
    Cancelled,
}

/// A key in a section: bound to an action, or unbound by the user so `[normal]` does not show through.
#[derive(Clone, Debug, PartialEq)]
enum Slot {
    Bound(Action),
    Unbound,
}

#[derive(Clone, Debug)]
enum Node {
    Leaf(Action),
    Branch(IndexMap<Key, Node>),
}

impl Node {
    fn leaves(&self) -> usize {
        match self {
            Node::Leaf(_) => 1,
            Node::Branch(m) => m.values().map(Node::leaves).sum(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Keymap {
    sections: IndexMap<Mode, IndexMap<KeySeq, Slot>>,
    tries: HashMap<Mode, Node>,
}

impl Default for Keymap {
    /// The embedded default keymap.
    fn default() -> Keymap {
        let mut km = Keymap::empty();
        // The embedded file is tested to load cleanly, so there is nothing to report here.
        let _ = km.merge(&Source::new(DEFAULT_LABEL, DEFAULT_KEYMAP));
        km.rebuild();
        km
    }
}

/// A warning with the byte offset it points at, so a file's warnings can be reported in file order.
type Located = (usize, String);

struct Entry {
    keys: KeySeq,
    slot: Slot,
    span: Range<usize>,
}

impl Keymap {
    fn empty() -> Keymap {
        Keymap {
            sections: Mode::ALL
                .into_iter()
                .map(|m| (m, IndexMap::new()))
                .collect(),
            tries: HashMap::new(),
        }
    }

    /// The default keymap with the user's file merged over it. Unreadable files and bad entries become
    /// warnings; whatever is bad is skipped.
    pub fn from_user_file(path: &Path) -> (Keymap, Vec<String>) {
        match std::fs::read_to_string(path) {
            Ok(text) => Keymap::with_user(&path.display().to_string(), &text),
            Err(e) => (
                Keymap::default(),
                vec![format!(
                    "{}: cannot read keymap ({e}); using the default keymap",
                    path.display()
                )],
            ),
        }
    }

    /// The default keymap with `text` (labelled `label` in warnings) merged over it.
    pub fn with_user(label: &str, text: &str) -> (Keymap, Vec<String>) {
        let mut km = Keymap::default();
        let warnings = km.merge(&Source::new(label, text));
        km.rebuild();
        (km, warnings)
    }

    /// Merges one keymap file into the sections. Unbinds are applied before binds, so a file can move
    /// `g` from `gg` to a single key without caring about line order.
    fn merge(&mut self, src: &Source) -> Vec<String> {
        let root = match DeTable::parse(src.text) {
            Ok(t) => t.into_inner(),
            Err(e) => return vec![src.toml_error(&e, "the file is ignored")],
        };
        let mut warns: Vec<Located> = Vec::new();
        let mut warn =
            |span: Range<usize>, msg: String| warns.push((span.start, src.at(span, msg)));
        let mut per_mode: Vec<(Mode, Vec<Entry>)> = Vec::new();
        for (name, value) in &root {
            let Some(mode) = Mode::from_section(name.get_ref()) else {
                let names = Mode::ALL.map(Mode::section);
                warn(
                    name.span(),
                    format!(
                        "unknown section `{}`{} (expected one of: {})",
                        name.get_ref(),
                        suggestion(name.get_ref(), names),
                        names.join(", ")
                    ),
                );
                continue;
            };
            let Some(table) = value.get_ref().as_table() else {
                warn(
                    value.span(),
                    format!(
                        "`{}` must be a table of \"key\" = \"action\" (write it as [{}])",
                        mode.section(),
                        mode.section()
                    ),
                );
                continue;
            };
            let mut entries = Vec::new();
            for (k, v) in table {
                let keys = match parse_keys(k.get_ref()) {
                    Ok(keys) => keys,
                    Err(e) => {
                        warn(k.span(), e);
                        continue;
                    }
                };
                match parse_slot(v.get_ref()) {
                    Ok(slot) => entries.push(Entry {
                        keys,
                        slot,
                        span: k.span(),
                    }),
                    Err(e) => warn(v.span(), e),
                }
            }
            per_mode.push((mode, entries));
        }

        for (mode, entries) in &per_mode {
            let section = self.sections.entry(*mode).or_default();
            for e in entries.iter().filter(|e| e.slot == Slot::Unbound) {
                if matches!(mode, Mode::Pane(_)) {
                    // Keep a marker so the `[normal]` binding stays hidden in this pane.
                    section.insert(e.keys.clone(), Slot::Unbound);
                } else if section.shift_remove(&e.keys).is_none() {
                    warn(
                        e.span.clone(),
                        format!(
                            "`{}` is not bound in [{}], nothing to unbind",
                            e.keys,
                            mode.section()
                        ),
                    );
                }
            }
        }
        for (mode, entries) in per_mode {
            let section = self.sections.entry(mode).or_default();
            for e in entries {
                let Slot::Bound(action) = e.slot else {
                    continue;
                };
                let clash = section.iter().find(|(k, slot)| {
                    matches!(slot, Slot::Bound(_)) && **k != e.keys && overlaps(k, &e.keys)
                });
                if let Some((other, Slot::Bound(other_action))) = clash {
                    warn(
                        e.span,
                        format!(
                            "`{}` ({}) conflicts with `{}` ({}) in [{}]: a key can't be both a \
                             binding and the start of a chord; unbind one with \"none\"",
                            e.keys,
                            action_name(&action),
                            other,
                            action_name(other_action),
                            mode.section()
                        ),
                    );
                    continue;
                }
                section.insert(e.keys, Slot::Bound(action));
            }
        }
        warns.sort_by_key(|(at, _)| *at);
        warns.into_iter().map(|(_, w)| w).collect()
    }

    fn rebuild(&mut self) {
        self.tries = Mode::ALL
            .into_iter()
            .map(|mode| {
                let mut root = IndexMap::new();
                for (keys, action) in self.effective(mode) {
                    insert(&mut root, keys.keys(), action.clone());
                }
                (mode, Node::Branch(root))
            })
            .collect();
    }

    /// The bindings in force in `mode`: a pane's own first, then the `[normal]` ones it doesn't shadow.
    fn effective(&self, mode: Mode) -> Vec<(&KeySeq, &Action)> {
        let bound = |m: Mode| {
            self.sections[&m].iter().filter_map(|(k, s)| match s {
                Slot::Bound(a) => Some((k, a)),
                Slot::Unbound => None,
            })
        };
        match mode {
            Mode::Normal | Mode::Confirm => bound(mode).collect(),
            Mode::Pane(_) => {
                let own = &self.sections[&mode];
                let mut out: Vec<_> = bound(mode).collect();
                out.extend(
                    bound(Mode::Normal).filter(|(k, _)| !own.keys().any(|o| overlaps(o, k))),
                );
                out
            }
        }
    }

    /// What the keys pressed so far mean in `mode`.
    pub fn lookup(&self, mode: impl Into<Mode>, keys: &[Key]) -> Lookup {
        let Some(mut node) = self.tries.get(&mode.into()) else {
            return Lookup::NotFound;
        };
        if keys.is_empty() {
            return Lookup::NotFound;
        }
        for (i, key) in keys.iter().enumerate() {
            if i > 0 && key.is_esc() {
                return Lookup::Cancelled;
            }
            match node {
                Node::Branch(children) => match children.get(key) {
                    Some(child) => node = child,
                    None => return Lookup::NotFound,
                },
                Node::Leaf(_) => return Lookup::NotFound,
            }
        }
        match node {
            Node::Leaf(a) => Lookup::Matched(a.clone()),
            Node::Branch(children) => Lookup::Pending(
                children
                    .iter()
                    .map(|(k, n)| {
                        let hint = match n {
                            Node::Leaf(a) => label(a),
                            Node::Branch(_) => match n.leaves() {
                                1 => "+1 binding".to_string(),
                                n => format!("+{n} bindings"),
                            },
                        };
                        (*k, hint)
                    })
                    .collect(),
            ),
        }
    }

    /// Rows for the help screen from the active keymap: every action bound in `mode` with all its
    /// keys (`j, Down`), in keymap order, pane bindings first.
    pub fn help_rows(&self, mode: impl Into<Mode>) -> Vec<(String, String)> {
        let mut rows: Vec<(Vec<String>, &Action)> = Vec::new();
        for (keys, action) in self.effective(mode.into()) {
            match rows.iter_mut().find(|(_, a)| *a == action) {
                Some((labels, _)) => labels.push(keys.label()),
                None => rows.push((vec![keys.label()], action)),
            }
        }
        rows.into_iter()
            .map(|(labels, a)| (labels.join(", "), label(a)))
            .collect()
    }

    /// The keys that trigger `action` in `mode`, for footer hints (`["j", "Down"]`).
    pub fn keys_for(&self, mode: impl Into<Mode>, action: &Action) -> Vec<String> {
        self.effective(mode.into())
            .into_iter()
            .filter(|(_, a)| *a == action)
            .map(|(k, _)| k.label())
            .collect()
    }
}

/// Whether one sequence is a prefix of the other (equal counts): they can't both be bound.
fn overlaps(a: &KeySeq, b: &KeySeq) -> bool {
    a.keys().starts_with(b.keys()) || b.keys().starts_with(a.keys())
}

fn insert(node: &mut IndexMap<Key, Node>, keys: &[Key], action: Action) {
    let Some((first, rest)) = keys.split_first() else {
        return;
    };
    if rest.is_empty() {
        node.entry(*first).or_insert(Node::Leaf(action));
        return;
    }
    // Sections are conflict-free by construction; a leaf here would be a bug, and we keep the leaf.
    if let Node::Branch(children) = node
        .entry(*first)
        .or_insert_with(|| Node::Branch(IndexMap::new()))
    {
        insert(children, rest, action);
    }
}

fn parse_keys(s: &str) -> Result<KeySeq, String> {
    let seq: KeySeq = s.parse()?;
    if seq.keys().iter().skip(1).any(|k| k.is_esc()) {
        return Err(format!(
            "`{s}`: <Esc> cancels a pending chord, so it can only be bound on its own"
        ));
    }
    Ok(seq)
}

/// `"quit"`, `"none"`, `{ focus_pane = 1 }` or `{ theme = "light" }`.
fn parse_slot(v: &DeValue) -> Result<Slot, String> {
    let json = match v {
        DeValue::String(s) if s == "none" => return Ok(Slot::Unbound),
        DeValue::String(s) => {
            if let Some(example) = needs_argument(s) {
                return Err(format!("`{s}` needs an argument: write {example}"));
            }
            serde_json::Value::String(s.to_string())
        }
        DeValue::Table(t) if t.len() == 1 => {
            let (name, arg) = t.iter().next().expect("one entry");
            let name = name.get_ref().to_string();
            let arg = match arg.get_ref() {
                DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                    .map(serde_json::Value::from)
                    .map_err(|_| format!("`{name}`: number out of range"))?,
                DeValue::String(s) => serde_json::Value::String(s.to_string()),
                other => {
                    return Err(format!(
                        "`{name}` takes a number or a string, not {}",
                        other.type_str()
                    ));
                }
            };
            serde_json::json!({ name: arg })
        }
        _ => {
            return Err(
                "expected an action name (\"quit\"), \"none\" to unbind, or { focus_pane = 1 }"
                    .into(),
            );
        }
    };
    let (name, arg_given) = match &json {
        serde_json::Value::String(s) => (s.clone(), false),
        obj => (
            obj.as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_default(),
            true,
        ),
    };
    let action: Action = serde_json::from_value(json).map_err(|_| {
        let known = all_action_names().any(|n| n == name);
        match (known, arg_given, needs_argument(&name)) {
            (true, true, Some(example)) => format!("`{name}` takes an argument like {example}"),
            (true, true, None) => format!("`{name}` takes no argument: write \"{name}\""),
            _ => format!(
                "unknown action `{name}`{}",
                suggestion(&name, all_action_names())
            ),
        }
    })?;
    if let Action::FocusPane(n) = action
        && !(1..=5).contains(&n)
    {
        return Err(format!("no pane {n}: panes are 1 to 5"));
    }
    Ok(Slot::Bound(action))
}

fn needs_argument(name: &str) -> Option<&'static str> {
    match name {
        "focus_pane" => Some("{ focus_pane = 1 }"),
        "theme" => Some("{ theme = \"light\" }"),
        _ => None,
    }
}

/// Every action without an argument, in the order help lists them.
pub const SIMPLE_ACTIONS: &[Action] = &[
    Action::Quit,
    Action::Help,
    Action::CommandMode,
    Action::Filter,
    Action::Finder,
    Action::NextPane,
    Action::PrevPane,
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
    Action::Redraw,
    Action::Sort,
    Action::SortReverse,
    Action::Pin,
];

fn all_action_names() -> impl Iterator<Item = &'static str> + Clone {
    SIMPLE_ACTIONS
        .iter()
        .map(action_name)
        .chain(["focus_pane", "theme"])
}

/// The keymap-file name of an action (`rerun_downstream`).
pub fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Quit => "quit",
        Action::Help => "help",
        Action::CommandMode => "command_mode",
        Action::Filter => "filter",
        Action::Finder => "finder",
        Action::NextPane => "next_pane",
        Action::PrevPane => "prev_pane",
        Action::FocusPane(_) => "focus_pane",
        Action::Up => "up",
        Action::Down => "down",
        Action::PageUp => "page_up",
        Action::PageDown => "page_down",
        Action::Top => "top",
        Action::Bottom => "bottom",
        Action::Left => "left",
        Action::Right => "right",
        Action::Enter => "enter",
        Action::Back => "back",
        Action::Launch => "launch",
        Action::Cancel => "cancel",
        Action::Rerun => "rerun",
        Action::RerunDownstream => "rerun_downstream",
        Action::RetryFailed => "retry_failed",
        Action::Resume => "resume",
        Action::Logs => "logs",
        Action::Yank => "yank",
        Action::Confirm => "confirm",
        Action::Deny => "deny",
        Action::SmoothMore => "smooth_more",
        Action::SmoothLess => "smooth_less",
        Action::ToggleLogY => "toggle_log_y",
        Action::CycleXAxis => "cycle_x_axis",
        Action::ToggleRaw => "toggle_raw",
        Action::ToggleWrap => "toggle_wrap",
        Action::ToggleFollow => "toggle_follow",
        Action::ToggleStderr => "toggle_stderr",
        Action::Search => "search",
        Action::SearchNext => "search_next",
        Action::SearchPrev => "search_prev",
        Action::Theme(_) => "theme",
        Action::Redraw => "redraw",
        Action::Sort => "sort",
        Action::SortReverse => "sort_reverse",
        Action::Pin => "pin",
        Action::CycleChart => "cycle_chart",
        Action::CycleStateFilter => "cycle_state_filter",
        Action::TogglePruned => "toggle_pruned",
        Action::Mark => "mark",
        Action::NextParam => "next_param",
        Action::PrevParam => "prev_param",
    }
}

/// One line saying what an action does, for help and which-key hints.
pub fn describe(a: &Action) -> &'static str {
    match a {
        Action::Quit => "quit (runs keep going)",
        Action::Help => "show the keys",
        Action::CommandMode => "open the : command line",
        Action::Filter => "filter the list",
        Action::Finder => "find a run, step, job, metric or study",
        Action::NextPane => "next pane",
        Action::PrevPane => "previous pane",
        Action::FocusPane(_) => "focus a pane by number",
        Action::Up => "move up",
        Action::Down => "move down",
        Action::PageUp => "page up",
        Action::PageDown => "page down",
        Action::Top => "go to the top",
        Action::Bottom => "go to the bottom",
        Action::Left => "move left",
        Action::Right => "move right",
        Action::Enter => "open or expand the selection",
        Action::Back => "close, clear the filter or collapse",
        Action::Launch => "launch a pipeline",
        Action::Cancel => "cancel the selected run, step or job",
        Action::Rerun => "re-run the selected step",
        Action::RerunDownstream => "re-run the selected step and everything downstream",
        Action::RetryFailed => "retry the failed steps of the selected run",
        Action::Resume => "resume the selected run, whose engine died",
        Action::Logs => "show the selection's logs",
        Action::Yank => "copy the selected id",
        Action::Confirm => "yes",
        Action::Deny => "no",
        Action::SmoothMore => "smooth the curves more",
        Action::SmoothLess => "smooth the curves less",
        Action::ToggleLogY => "toggle a log y-axis",
        Action::CycleXAxis => "cycle the x-axis",
        Action::ToggleRaw => "show or hide the raw curve",
        Action::ToggleWrap => "toggle line wrap",
        Action::ToggleFollow => "follow the end of the log",
        Action::ToggleStderr => "switch between stdout and stderr",
        Action::Search => "search the log",
        Action::SearchNext => "next match",
        Action::SearchPrev => "previous match",
        Action::Theme(_) => "switch theme",
        Action::Redraw => "redraw the screen",
        Action::Sort => "sort by the next column",
        Action::SortReverse => "reverse the sort order",
        Action::Pin => "pin the run's curves into the metrics overlay",
        Action::CycleChart => "next trials chart",
        Action::CycleStateFilter => "show only trials in the next state",
        Action::TogglePruned => "hide or show pruned trials everywhere",
        Action::Mark => "mark the trial for the intermediate chart",
        Action::NextParam => "slice chart: next param",
        Action::PrevParam => "slice chart: previous param",
    }
}

/// [`describe`] with the argument filled in (`focus the Runs pane`).
fn label(a: &Action) -> String {
    match a {
        Action::FocusPane(n) => match Pane::ALL.get(usize::from(*n).wrapping_sub(1)) {
            Some(p) => format!("focus the {} pane", p.title()),
            None => describe(a).to_string(),
        },
        Action::Theme(name) => format!("switch to the {name} theme"),
        _ => describe(a).to_string(),
    }
}

/// The keys of a half-typed chord. Feed it every key press; it clears itself once the sequence
/// matches, fails or is cancelled.
#[derive(Clone, Debug, Default)]
pub struct KeyBuffer {
    pending: Vec<Key>,
}

impl KeyBuffer {
    pub fn press(&mut self, keymap: &Keymap, mode: impl Into<Mode>, key: Key) -> Lookup {
        self.pending.push(key);
        let result = keymap.lookup(mode, &self.pending);
        if !matches!(result, Lookup::Pending(_)) {
            self.pending.clear();
        }
        result
    }

    /// The keys typed so far, to show next to the which-key hints.
    pub fn pending(&self) -> &[Key] {
        &self.pending
    }

    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> Vec<Key> {
        s.parse::<KeySeq>().unwrap().0
    }

    fn look(km: &Keymap, mode: impl Into<Mode>, s: &str) -> Lookup {
        km.lookup(mode, &keys(s))
    }

    #[test]
    fn default_keymap_loads_cleanly() {
        let mut km = Keymap::empty();
        let warnings = km.merge(&Source::new(DEFAULT_LABEL, DEFAULT_KEYMAP));
        assert!(warnings.is_empty(), "{warnings:#?}");
        for mode in Mode::ALL {
            assert!(km.sections.contains_key(&mode));
        }
    }

    #[test]
    fn action_names_match_serde() {
        for a in SIMPLE_ACTIONS {
            let name = action_name(a);
            let back: Action = serde_json::from_value(name.into()).unwrap();
            assert_eq!(&back, a);
            assert!(!describe(a).is_empty());
        }
    }

    #[test]
    fn matches_single_keys_and_chords() {
        let km = Keymap::default();
        assert_eq!(look(&km, Mode::Normal, "q"), Lookup::Matched(Action::Quit));
        assert_eq!(
            look(&km, Mode::Normal, "3"),
            Lookup::Matched(Action::FocusPane(3))
        );
        assert_eq!(
            look(&km, Mode::Normal, "<S-Tab>"),
            Lookup::Matched(Action::PrevPane)
        );
        assert_eq!(look(&km, Mode::Normal, "gg"), Lookup::Matched(Action::Top));
        assert_eq!(
            look(&km, Mode::Normal, "g"),
            Lookup::Pending(vec![(keys("g")[0], "go to the top".into())])
        );
        assert_eq!(look(&km, Mode::Normal, "g<Esc>"), Lookup::Cancelled);
        assert_eq!(look(&km, Mode::Normal, "gx"), Lookup::NotFound);
        assert_eq!(look(&km, Mode::Normal, "Z"), Lookup::NotFound);
        assert_eq!(look(&km, Mode::Normal, "qq"), Lookup::NotFound);
        assert_eq!(km.lookup(Mode::Normal, &[]), Lookup::NotFound);
        assert_eq!(
            look(&km, Mode::Confirm, "y"),
            Lookup::Matched(Action::Confirm)
        );
        assert_eq!(
            look(&km, Mode::Confirm, "<Esc>"),
            Lookup::Matched(Action::Deny)
        );
        assert_eq!(look(&km, Mode::Confirm, "q"), Lookup::NotFound);
    }

    #[test]
    fn key_buffer_tracks_pending_chords() {
        let km = Keymap::default();
        let mut buf = KeyBuffer::default();
        let g = keys("g")[0];
        assert!(matches!(
            buf.press(&km, Mode::Normal, g),
            Lookup::Pending(_)
        ));
        assert_eq!(buf.pending(), &[g]);
        assert_eq!(
            buf.press(&km, Mode::Normal, g),
            Lookup::Matched(Action::Top)
        );
        assert!(buf.pending().is_empty());
        buf.press(&km, Mode::Normal, g);
        assert_eq!(
            buf.press(&km, Mode::Normal, keys("<Esc>")[0]),
            Lookup::Cancelled
        );
        assert!(buf.pending().is_empty());
        // Esc on its own is an ordinary binding.
        assert_eq!(
            buf.press(&km, Mode::Normal, keys("<Esc>")[0]),
            Lookup::Matched(Action::Back)
        );
    }

    #[test]
    fn panes_shadow_normal() {
        let km = Keymap::default();
        assert_eq!(look(&km, Mode::Normal, "l"), Lookup::Matched(Action::Logs));
        assert_eq!(
            look(&km, Pane::Metrics, "l"),
            Lookup::Matched(Action::Right)
        );
        assert_eq!(look(&km, Pane::Runs, "l"), Lookup::Matched(Action::Logs));
        assert_eq!(
            look(&km, Pane::Logs, "n"),
            Lookup::Matched(Action::SearchNext)
        );
        assert_eq!(look(&km, Pane::Jobs, "n"), Lookup::Matched(Action::Launch));
        // Normal bindings the pane doesn't shadow still work.
        assert_eq!(look(&km, Pane::Metrics, "gg"), Lookup::Matched(Action::Top));
        assert_eq!(
            km.keys_for(Pane::Metrics, &Action::Logs),
            Vec::<String>::new()
        );
        assert_eq!(km.keys_for(Pane::Runs, &Action::Down), vec!["j", "Down"]);
        assert_eq!(
            km.keys_for(Mode::Normal, &Action::PrevPane),
            vec!["Shift-Tab"]
        );
    }

    #[test]
    fn user_file_overrides_and_unbinds() {
        let user = r#"
[normal]
"q" = "none"
"<C-q>" = "quit"
"gg" = "none"
"g" = "top"
"Q" = { theme = "light" }

[metrics]
"l" = "none"
"#;
        let (km, warnings) = Keymap::with_user("keymap.toml", user);
        assert!(warnings.is_empty(), "{warnings:#?}");
        assert_eq!(look(&km, Mode::Normal, "q"), Lookup::NotFound);
        assert_eq!(
            look(&km, Mode::Normal, "<C-q>"),
            Lookup::Matched(Action::Quit)
        );
        assert_eq!(look(&km, Mode::Normal, "g"), Lookup::Matched(Action::Top));
        assert_eq!(
            look(&km, Mode::Normal, "Q"),
            Lookup::Matched(Action::Theme("light".into()))
        );
        // Untouched defaults stay.
        assert_eq!(look(&km, Mode::Normal, "j"), Lookup::Matched(Action::Down));
        // Unbinding in a pane hides both the pane's and normal's binding there, and only there.
        assert_eq!(look(&km, Pane::Metrics, "l"), Lookup::NotFound);
        assert_eq!(look(&km, Pane::Logs, "l"), Lookup::Matched(Action::Logs));
        assert_eq!(km.keys_for(Mode::Normal, &Action::Quit), vec!["Ctrl-q"]);
    }

    #[test]
    fn conflicts_and_bad_entries_are_reported_and_skipped() {
        let user = r#"[normal]
"g" = "quit"
"<C-x" = "quit"
"x" = "frobnicate"
"z" = "qiut"
"1" = { focus_pane = 9 }
"2" = "focus_pane"
"3" = 7
"<C-w><Esc>" = "back"
"u" = "none"

[metrcs]
"a" = "quit"

[logs]
"gg" = "bottom"
"#;
        let (km, warnings) = Keymap::with_user("/home/ada/.config/sortie/keymap.toml", user);
        insta::assert_snapshot!(warnings.join("\n"));
        // The good defaults survive every bad line.
        assert_eq!(look(&km, Mode::Normal, "gg"), Lookup::Matched(Action::Top));
        assert_eq!(
            look(&km, Mode::Normal, "1"),
            Lookup::Matched(Action::FocusPane(1))
        );
        // A pane may shadow a normal chord with its own.
        assert_eq!(look(&km, Pane::Logs, "gg"), Lookup::Matched(Action::Bottom));
    }

    #[test]
    fn syntax_errors_skip_the_whole_file() {
        let (km, warnings) = Keymap::with_user("k.toml", "[normal]\n\"q\" = \n");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("k.toml:2:"), "{}", warnings[0]);
        assert!(warnings[0].ends_with("the file is ignored"));
        assert_eq!(look(&km, Mode::Normal, "q"), Lookup::Matched(Action::Quit));
        let (_, warnings) = Keymap::with_user("k.toml", "normal = 3\n");
        assert_eq!(
            warnings,
            vec![
                "k.toml:1:10: `normal` must be a table of \"key\" = \"action\" (write it as [normal])"
            ]
        );
    }

    #[test]
    fn pending_hints_cover_groups() {
        let user = "[normal]\n\"<C-w>l\" = \"next_pane\"\n\"<C-w>h\" = \"prev_pane\"\n\"<C-w>gx\" = \"redraw\"\n";
        let (km, warnings) = Keymap::with_user("k.toml", user);
        assert!(warnings.is_empty(), "{warnings:?}");
        let Lookup::Pending(hints) = look(&km, Mode::Normal, "<C-w>") else {
            panic!("expected a pending chord");
        };
        let hints: Vec<(String, String)> = hints.into_iter().map(|(k, h)| (k.label(), h)).collect();
        assert_eq!(
            hints,
            vec![
                ("l".to_string(), "next pane".to_string()),
                ("h".to_string(), "previous pane".to_string()),
                ("g".to_string(), "+1 binding".to_string()),
            ]
        );
    }

    #[test]
    fn help_is_generated_from_the_active_keymap() {
        let (km, _) = Keymap::with_user("k.toml", "[metrics]\n\"<C-s>\" = \"smooth_more\"\n");
        let rows = km.help_rows(Pane::Metrics);
        let text: Vec<String> = rows.iter().map(|(k, d)| format!("{k:>20}  {d}")).collect();
        insta::assert_snapshot!(text.join("\n"));
        let confirm = km.help_rows(Mode::Confirm);
        assert_eq!(
            confirm,
            vec![
                ("y, Enter".to_string(), "yes".to_string()),
                ("n, Esc".to_string(), "no".to_string())
            ]
        );
    }
}
