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
use crate::tui::action::{ACTIONS, Action, Arg, Pane};

const DEFAULT_LABEL: &str = "the built-in keymap (src/tui/action.rs)";

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
        // The table's keymap is tested to load cleanly, so there is nothing to report here.
        let _ = km.merge(&Source::new(DEFAULT_LABEL, &default_keymap_text()));
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
                            action.name(),
                            other,
                            other_action.name(),
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
    let (name, arg) = match v {
        DeValue::String(s) if s == "none" => return Ok(Slot::Unbound),
        DeValue::String(s) => (s.to_string(), None),
        DeValue::Table(t) if t.len() == 1 => {
            let (name, arg) = t.iter().next().ok_or("an empty table")?;
            let name = name.get_ref().to_string();
            let arg = match arg.get_ref() {
                DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                    .map(Arg::Number)
                    .map_err(|_| format!("`{name}`: number out of range"))?,
                DeValue::String(s) => Arg::Text(s.to_string()),
                other => {
                    return Err(format!(
                        "`{name}` takes a number or a string, not {}",
                        other.type_str()
                    ));
                }
            };
            (name, Some(arg))
        }
        _ => {
            return Err(
                "expected an action name (\"quit\"), \"none\" to unbind, or { focus_pane = 1 }"
                    .into(),
            );
        }
    };
    Action::from_name(&name, arg).map(Slot::Bound)
}

/// What an action does, in one line (its row of the action table).
pub fn describe(a: &Action) -> &'static str {
    a.spec().help
}

/// The default keymap as a keymap file, made from the action table: `keymaps/default.toml` is this
/// text (a test keeps them equal), so users copy lines from what the app actually binds.
pub fn default_keymap_text() -> String {
    let mut out = String::from(DEFAULT_HEADER);
    for mode in Mode::ALL {
        out.push_str(&format!("\n[{}]\n", mode.section()));
        for spec in ACTIONS {
            for (section, keys) in spec.keys {
                if *section != mode.section() {
                    continue;
                }
                let value = match spec.action {
                    Action::FocusPane(_) => format!("{{ {} = {keys} }}", spec.name),
                    _ => format!("\"{}\"", spec.name),
                };
                out.push_str(&format!("\"{keys}\" = {value}\n"));
            }
        }
    }
    out
}

/// The README's key table, made from the action table (a test keeps the README's copy equal): every
/// action with its default keys (by pane where a pane binds it), its `:` command, and what it does.
pub fn key_table_markdown() -> String {
    let mut out = String::from("| keys | `:` command | what it does |\n|---|---|---|\n");
    // Typed text (`edit`) has neither a key nor a command: nothing to list.
    for spec in ACTIONS.iter().filter(|s| s.command || !s.keys.is_empty()) {
        // Each key once, with the panes that bind it when it is not bound everywhere.
        let mut by_key: Vec<(String, Vec<&str>)> = Vec::new();
        for (section, k) in spec.keys {
            let label = k
                .parse::<KeySeq>()
                .map_or_else(|_| k.to_string(), |s| s.label());
            match by_key.iter_mut().find(|(l, _)| *l == label) {
                Some((_, sections)) => sections.push(section),
                None => by_key.push((label, vec![section])),
            }
        }
        let mut keys: Vec<String> = by_key
            .iter()
            .map(|(label, sections)| match sections.as_slice() {
                ["normal"] => format!("`{label}`"),
                s => format!("`{label}` ({})", s.join(", ")),
            })
            .collect();
        if matches!(spec.action, Action::FocusPane(_)) {
            keys = vec!["`1`–`5`".into()];
        }
        let command = match (spec.command, &spec.action) {
            (false, _) => String::new(),
            (true, Action::FocusPane(_)) => format!("`:{} N`", spec.name),
            (true, Action::Theme(_)) => format!("`:{} NAME`", spec.name),
            (true, _) => format!("`:{}`", spec.name),
        };
        let asks = if spec.destructive {
            " (asks first)"
        } else {
            ""
        };
        out.push_str(&format!(
            "| {} | {command} | {}{asks} |\n",
            keys.join(" "),
            spec.help
        ));
    }
    out
}

const DEFAULT_HEADER: &str = "# sortie's built-in keymap, made from the action table (src/tui/action.rs): edit that, then
# run `UPDATE_KEYMAP=1 cargo test --lib keymap` to rewrite this file. Copy any line into
# ~/.config/sortie/keymap.toml to change it: that file only overrides the keys it names, and
# `\"key\" = \"none\"` unbinds one.
#
# Keys: `j`, `G`, `?`, `<C-p>` (Ctrl), `<A-x>` (Alt), `<S-Tab>` (Shift), `<Esc>`, `<Enter>`, `<Space>`,
# `<Up>`, `<PageDown>`, `<F1>`... and sequences such as `gg` or `<C-w>l`.
# Sections: [normal] everywhere; [runs] [jobs] [metrics] [logs] [trials] shadow [normal] while that pane
# is focused; [confirm] answers a yes/no question.
";

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
        let warnings = km.merge(&Source::new(DEFAULT_LABEL, &default_keymap_text()));
        assert!(warnings.is_empty(), "{warnings:#?}");
        for mode in Mode::ALL {
            assert!(km.sections.contains_key(&mode));
        }
    }

    /// The README's key table is the action table's; `UPDATE_KEYMAP=1` rewrites it between its markers.
    #[test]
    fn readme_key_table_is_the_tables() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let (start, end) = (
            "<!-- keys: made from src/tui/action.rs -->\n",
            "<!-- /keys -->",
        );
        let a = readme
            .find(start)
            .expect("README has the keys start marker")
            + start.len();
        let b = readme[a..]
            .find(end)
            .expect("README has the keys end marker")
            + a;
        let want = key_table_markdown();
        if std::env::var_os("UPDATE_KEYMAP").is_some() {
            std::fs::write(&path, format!("{}{want}{}", &readme[..a], &readme[b..])).unwrap();
            return;
        }
        assert!(
            readme[a..b] == want,
            "README's key table is out of date with the action table: run UPDATE_KEYMAP=1 cargo test --lib keymap"
        );
    }

    /// `keymaps/default.toml` is what the table binds; `UPDATE_KEYMAP=1` rewrites it.
    #[test]
    fn keymaps_default_toml_is_the_tables_keymap() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("keymaps/default.toml");
        let want = default_keymap_text();
        if std::env::var_os("UPDATE_KEYMAP").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap();
        assert!(
            have == want,
            "keymaps/default.toml is out of date with the action table: run UPDATE_KEYMAP=1 cargo test --lib keymap"
        );
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
