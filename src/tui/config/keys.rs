//! Key syntax for keymap files: `j`, `G`, `?`, `<C-p>`, `<S-Tab>`, `<F5>`, and sequences such as `gg`,
//! `g g` or `<C-w>l`. Keys are normalized so a binding and a crossterm event compare equal however the
//! terminal chose to report the shift key.

use std::fmt;
use std::str::FromStr;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// One key press, normalized (see [`Key::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

/// The modifiers bindings can use; others (Super, Hyper, Meta) are dropped so they can't stop a match.
const KNOWN_MODS: KeyModifiers = KeyModifiers::CONTROL
    .union(KeyModifiers::ALT)
    .union(KeyModifiers::SHIFT);

impl Key {
    /// Builds a key, normalizing the ways terminals disagree: an uppercase letter always carries
    /// Shift (and `S-a` means `A`), Shift is dropped from other characters (`?` is already shifted),
    /// and BackTab is `S-Tab`.
    pub fn new(code: KeyCode, mods: KeyModifiers) -> Key {
        let mut mods = mods & KNOWN_MODS;
        let code = match code {
            KeyCode::BackTab => {
                mods |= KeyModifiers::SHIFT;
                KeyCode::Tab
            }
            // Many terminals send NUL for Ctrl-Space.
            KeyCode::Null => {
                mods |= KeyModifiers::CONTROL;
                KeyCode::Char(' ')
            }
            KeyCode::Char(c) if c.is_uppercase() => {
                mods |= KeyModifiers::SHIFT;
                KeyCode::Char(c)
            }
            KeyCode::Char(c) if c.is_lowercase() && mods.contains(KeyModifiers::SHIFT) => {
                KeyCode::Char(single(c.to_uppercase()).unwrap_or(c))
            }
            KeyCode::Char(c) if !c.is_alphabetic() => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::Char(c)
            }
            other => other,
        };
        Key { code, mods }
    }

    /// A key without modifiers (after normalization, so `Key::plain(KeyCode::Char('G'))` has Shift).
    pub fn plain(code: KeyCode) -> Key {
        Key::new(code, KeyModifiers::NONE)
    }

    pub fn from_event(ev: KeyEvent) -> Key {
        Key::new(ev.code, ev.modifiers)
    }

    /// The event a terminal would send for this key (for driving the app in tests).
    pub fn to_event(self) -> KeyEvent {
        let code = match self.code {
            KeyCode::Tab if self.mods.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
            c => c,
        };
        KeyEvent::new(code, self.mods)
    }

    pub fn is_esc(self) -> bool {
        self.code == KeyCode::Esc && self.mods.is_empty()
    }

    /// Human form for help and footers: `Ctrl-p`, `Shift-Tab`, `G`, `Space`.
    pub fn label(self) -> String {
        let mut out = String::new();
        let mut mods = self.mods;
        // A shifted letter on its own reads better as the capital letter.
        let implied_shift = matches!(self.code, KeyCode::Char(c) if c.is_uppercase())
            && mods == KeyModifiers::SHIFT;
        if implied_shift {
            mods = KeyModifiers::NONE;
        }
        for (m, name) in [
            (KeyModifiers::CONTROL, "Ctrl-"),
            (KeyModifiers::ALT, "Alt-"),
            (KeyModifiers::SHIFT, "Shift-"),
        ] {
            if mods.contains(m) {
                out.push_str(name);
            }
        }
        match self.code {
            KeyCode::Char(' ') => out.push_str("Space"),
            KeyCode::Char(c) if !implied_shift && !mods.is_empty() => {
                out.extend(c.to_lowercase());
            }
            KeyCode::Char(c) => out.push(c),
            code => out.push_str(&code_name(code)),
        }
        out
    }
}

/// The one character a case mapping produced, if it produced exactly one (`ß` uppercases to `SS`).
fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
    let c = it.next()?;
    it.next().is_none().then_some(c)
}

impl From<KeyEvent> for Key {
    fn from(ev: KeyEvent) -> Key {
        Key::from_event(ev)
    }
}

impl From<Key> for KeyEvent {
    fn from(k: Key) -> KeyEvent {
        k.to_event()
    }
}

/// Names of non-character keys, as written in `<…>` and shown in help.
fn code_name(code: KeyCode) -> String {
    match code {
        KeyCode::Esc => "Esc".into(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Tab | KeyCode::BackTab => "Tab".into(),
        KeyCode::Backspace => "BS".into(),
        KeyCode::Delete => "Del".into(),
        KeyCode::Insert => "Insert".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        KeyCode::PageUp => "PageUp".into(),
        KeyCode::PageDown => "PageDown".into(),
        KeyCode::Up => "Up".into(),
        KeyCode::Down => "Down".into(),
        KeyCode::Left => "Left".into(),
        KeyCode::Right => "Right".into(),
        KeyCode::F(n) => format!("F{n}"),
        other => format!("{other:?}"),
    }
}

fn named_code(name: &str) -> Option<KeyCode> {
    let lower = name.to_ascii_lowercase();
    let code = match lower.as_str() {
        "esc" | "escape" => KeyCode::Esc,
        "enter" | "cr" | "return" => KeyCode::Enter,
        "tab" => KeyCode::Tab,
        "space" => KeyCode::Char(' '),
        "bs" | "backspace" => KeyCode::Backspace,
        "del" | "delete" => KeyCode::Delete,
        "insert" | "ins" => KeyCode::Insert,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        "pageup" | "pgup" => KeyCode::PageUp,
        "pagedown" | "pgdn" => KeyCode::PageDown,
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "lt" => KeyCode::Char('<'),
        "gt" => KeyCode::Char('>'),
        _ => {
            let n: u8 = lower.strip_prefix('f')?.parse().ok()?;
            return (1..=12).contains(&n).then_some(KeyCode::F(n));
        }
    };
    Some(code)
}

fn modifier(name: &str) -> Option<KeyModifiers> {
    match name.to_ascii_lowercase().as_str() {
        "c" | "ctrl" => Some(KeyModifiers::CONTROL),
        "a" | "m" | "alt" | "meta" => Some(KeyModifiers::ALT),
        "s" | "shift" => Some(KeyModifiers::SHIFT),
        _ => None,
    }
}

/// Parses the inside of `<…>`: modifiers, then one key name or character.
fn parse_bracketed(inner: &str) -> Result<Key, String> {
    let whole = format!("<{inner}>");
    if inner.is_empty() {
        return Err("empty key name `<>`".into());
    }
    let mut rest = inner;
    let mut mods = KeyModifiers::NONE;
    // Peel `X-` prefixes; a lone trailing `-` is the minus key itself (`<C-->`).
    while let Some((head, tail)) = rest.split_once('-') {
        if tail.is_empty() && head.is_empty() {
            break;
        }
        let Some(m) = modifier(head) else {
            if named_code(rest).is_some() {
                break;
            }
            return Err(format!(
                "unknown modifier `{head}-` in `{whole}` (expected C-, A- or S-)"
            ));
        };
        if mods.contains(m) {
            return Err(format!("modifier `{head}-` repeated in `{whole}`"));
        }
        mods |= m;
        if tail.is_empty() {
            return Err(format!("`{whole}` has modifiers but no key"));
        }
        rest = tail;
    }
    let mut chars = rest.chars();
    let code = match (chars.next(), chars.next()) {
        (Some(c), None) if c != ' ' => KeyCode::Char(c),
        _ => named_code(rest).ok_or_else(|| {
            format!(
                "unknown key name `{rest}` in `{whole}` (expected a single character or one of \
                 Esc, Enter, CR, Tab, Space, BS, Del, Insert, Home, End, PageUp, PageDown, Up, Down, \
                 Left, Right, F1-F12, lt, gt)"
            )
        })?,
    };
    Ok(Key::new(code, mods))
}

/// A sequence of keys (a chord when longer than one), as bound in a keymap file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct KeySeq(pub Vec<Key>);

impl KeySeq {
    /// Human form: `g g`, `Ctrl-w l`.
    pub fn label(&self) -> String {
        let labels: Vec<String> = self.0.iter().map(|k| k.label()).collect();
        labels.join(" ")
    }

    pub fn keys(&self) -> &[Key] {
        &self.0
    }
}

impl FromStr for KeySeq {
    type Err = String;

    fn from_str(s: &str) -> Result<KeySeq, String> {
        let mut keys = Vec::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            if c.is_whitespace() {
                // Spaces separate keys (`g g`); the space key itself is `<Space>`.
                rest = &rest[c.len_utf8()..];
                continue;
            }
            if c == '<' {
                let Some(end) = rest.find('>') else {
                    return Err(format!(
                        "unclosed `<` in `{s}` (write `<lt>` for the < key)"
                    ));
                };
                keys.push(parse_bracketed(&rest[1..end])?);
                rest = &rest[end + 1..];
            } else {
                keys.push(Key::plain(KeyCode::Char(c)));
                rest = &rest[c.len_utf8()..];
            }
        }
        if keys.is_empty() {
            return Err(if s.is_empty() {
                "empty key".into()
            } else {
                format!("`{s}` has no keys (write `<Space>` for the space bar)")
            });
        }
        Ok(KeySeq(keys))
    }
}

impl FromStr for Key {
    type Err = String;

    fn from_str(s: &str) -> Result<Key, String> {
        let seq: KeySeq = s.parse()?;
        match seq.0.as_slice() {
            [k] => Ok(*k),
            ks => Err(format!(
                "`{s}` is a sequence of {} keys, expected one",
                ks.len()
            )),
        }
    }
}

/// Keymap-file notation, which parses back to the same key: `g`, `G`, `<C-p>`, `<S-Tab>`, `<Space>`.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut mods = self.mods;
        let mut code = self.code;
        if let KeyCode::Char(c) = code
            && c.is_uppercase()
        {
            // `G` alone; with other modifiers spell the shift out: `<C-S-x>`.
            if mods == KeyModifiers::SHIFT {
                mods = KeyModifiers::NONE;
            } else {
                code = KeyCode::Char(single(c.to_lowercase()).unwrap_or(c));
            }
        }
        let name = match code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char('<') => "lt".to_string(),
            // `<C->>` would not parse back.
            KeyCode::Char('>') if !mods.is_empty() => "gt".to_string(),
            KeyCode::Char(c) if mods.is_empty() => return write!(f, "{c}"),
            KeyCode::Char(c) => c.to_string(),
            code => code_name(code),
        };
        f.write_str("<")?;
        for (m, p) in [
            (KeyModifiers::CONTROL, "C-"),
            (KeyModifiers::ALT, "A-"),
            (KeyModifiers::SHIFT, "S-"),
        ] {
            if mods.contains(m) {
                f.write_str(p)?;
            }
        }
        write!(f, "{name}>")
    }
}

impl fmt::Display for KeySeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for k in &self.0 {
            write!(f, "{k}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn seq(s: &str) -> Vec<Key> {
        s.parse::<KeySeq>().unwrap_or_else(|e| panic!("{s}: {e}")).0
    }

    fn k(code: KeyCode, mods: KeyModifiers) -> Key {
        Key { code, mods }
    }

    #[test]
    fn parses_single_keys() {
        use KeyCode::*;
        let none = KeyModifiers::NONE;
        let ctrl = KeyModifiers::CONTROL;
        let shift = KeyModifiers::SHIFT;
        assert_eq!(key("j"), k(Char('j'), none));
        assert_eq!(key("G"), k(Char('G'), shift));
        assert_eq!(key("?"), k(Char('?'), none));
        assert_eq!(key("/"), k(Char('/'), none));
        assert_eq!(key(":"), k(Char(':'), none));
        assert_eq!(key("<C-p>"), k(Char('p'), ctrl));
        assert_eq!(key("<S-Tab>"), k(Tab, shift));
        assert_eq!(key("<Tab>"), k(Tab, none));
        assert_eq!(key("<Esc>"), k(Esc, none));
        assert_eq!(key("<Enter>"), key("<CR>"));
        assert_eq!(key("<enter>"), k(Enter, none));
        assert_eq!(key("<Space>"), k(Char(' '), none));
        assert_eq!(key("<Up>"), k(Up, none));
        assert_eq!(key("<PageDown>"), k(PageDown, none));
        assert_eq!(key("<Home>"), k(Home, none));
        assert_eq!(key("<F1>"), k(F(1), none));
        assert_eq!(key("<F12>"), k(F(12), none));
        assert_eq!(key("<A-x>"), k(Char('x'), KeyModifiers::ALT));
        assert_eq!(key("<C-S-x>"), k(Char('X'), ctrl | shift));
        assert_eq!(key("<S-x>"), key("X"));
        assert_eq!(key("<C-->"), k(Char('-'), ctrl));
        assert_eq!(key("<lt>"), k(Char('<'), none));
        assert_eq!(key("<Ctrl-p>"), key("<C-p>"));
    }

    #[test]
    fn parses_sequences() {
        assert_eq!(seq("gg"), seq("g g"));
        assert_eq!(seq("gg").len(), 2);
        assert_eq!(seq("<C-w>l"), vec![key("<C-w>"), key("l")]);
        assert_eq!(seq("<C-w> <Left>"), vec![key("<C-w>"), key("<Left>")]);
    }

    #[test]
    fn rejects_with_a_reason() {
        let err = |s: &str| s.parse::<KeySeq>().unwrap_err();
        assert_eq!(err(""), "empty key");
        assert_eq!(
            err("  "),
            "`  ` has no keys (write `<Space>` for the space bar)"
        );
        assert_eq!(err("<>"), "empty key name `<>`");
        assert_eq!(err("<C-C-x>"), "modifier `C-` repeated in `<C-C-x>`");
        assert_eq!(
            err("<c-Ctrl-x>"),
            "modifier `Ctrl-` repeated in `<c-Ctrl-x>`"
        );
        assert_eq!(
            err("<X-p>"),
            "unknown modifier `X-` in `<X-p>` (expected C-, A- or S-)"
        );
        assert!(err("<Foo>").starts_with("unknown key name `Foo` in `<Foo>`"));
        assert!(err("<F13>").starts_with("unknown key name `F13`"));
        assert_eq!(err("<C->"), "`<C->` has modifiers but no key");
        assert!(err("<C-p").starts_with("unclosed `<`"));
        assert_eq!(
            "gg".parse::<Key>().unwrap_err(),
            "`gg` is a sequence of 2 keys, expected one"
        );
    }

    #[test]
    fn events_normalize_to_the_same_keys() {
        use KeyCode::*;
        let ev = |c, m| Key::from_event(KeyEvent::new(c, m));
        assert_eq!(ev(BackTab, KeyModifiers::SHIFT), key("<S-Tab>"));
        assert_eq!(ev(BackTab, KeyModifiers::NONE), key("<S-Tab>"));
        assert_eq!(ev(Char('G'), KeyModifiers::NONE), key("G"));
        assert_eq!(ev(Char('G'), KeyModifiers::SHIFT), key("G"));
        assert_eq!(ev(Char('?'), KeyModifiers::SHIFT), key("?"));
        assert_eq!(ev(Char('p'), KeyModifiers::CONTROL), key("<C-p>"));
        assert_eq!(
            ev(Char('p'), KeyModifiers::CONTROL | KeyModifiers::SUPER),
            key("<C-p>")
        );
        assert_eq!(ev(Null, KeyModifiers::NONE), key("<C-Space>"));
        assert_eq!(Key::from_event(key("<S-Tab>").to_event()), key("<S-Tab>"));
        assert_eq!(key("<S-Tab>").to_event().code, BackTab);
    }

    #[test]
    fn display_round_trips_and_labels_read_well() {
        for s in [
            "j", "G", "?", "<C-p>", "<S-Tab>", "<Tab>", "<Esc>", "<Enter>", "<Space>", "<Up>",
            "<PageUp>", "<F5>", "<A-x>", "<C-S-x>", "<lt>", "<C-gt>", "<C-->", "gg", "<C-w>l",
        ] {
            let parsed: KeySeq = s.parse().unwrap();
            assert_eq!(parsed.to_string(), s, "notation of {s}");
            assert_eq!(parsed.to_string().parse::<KeySeq>().unwrap(), parsed);
        }
        assert_eq!("<CR>".parse::<KeySeq>().unwrap().to_string(), "<Enter>");
        let label = |s: &str| s.parse::<KeySeq>().unwrap().label();
        assert_eq!(label("<C-p>"), "Ctrl-p");
        assert_eq!(label("<S-Tab>"), "Shift-Tab");
        assert_eq!(label("gg"), "g g");
        assert_eq!(label("G"), "G");
        assert_eq!(label("<C-S-x>"), "Ctrl-Shift-x");
        assert_eq!(label("<C-w>l"), "Ctrl-w l");
        assert_eq!(label("<Space>"), "Space");
        assert_eq!(label("<PageDown>"), "PageDown");
    }
}
