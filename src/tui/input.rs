//! From key presses to actions: overlays that take text get the keys first, then the keymap trie for the
//! focused pane (with chords pending until they match, fail, or Esc cancels them).

use super::action::Action;
use super::app::{App, Effect, FinderKey, InputKey, Overlay};
use super::config::{Key, KeyBuffer, Keymap, Lookup, Mode};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// A half-typed chord and the which-key hint it shows.
#[derive(Clone, Debug, Default)]
pub struct KeyState {
    pub buffer: KeyBuffer,
    /// Possible next keys while a chord is pending: (key, what it does).
    pub hints: Vec<(String, String)>,
}

pub fn handle_key(app: &mut App, keymap: &Keymap, st: &mut KeyState, ev: KeyEvent) -> Vec<Effect> {
    match &app.overlay {
        Some(Overlay::Input(_)) => {
            let k = match ev.code {
                KeyCode::Enter => InputKey::Enter,
                KeyCode::Esc => InputKey::Esc,
                KeyCode::Backspace => InputKey::Backspace,
                KeyCode::Tab => InputKey::Tab,
                KeyCode::Char(c) if !ev.modifiers.contains(KeyModifiers::CONTROL) => {
                    InputKey::Char(c)
                }
                _ => return Vec::new(),
            };
            return app.input_key(k);
        }
        Some(Overlay::Finder(_)) => {
            let k = match (ev.code, ev.modifiers.contains(KeyModifiers::CONTROL)) {
                (KeyCode::Enter, _) => FinderKey::Enter,
                (KeyCode::Esc, _) => FinderKey::Esc,
                (KeyCode::Backspace, _) => FinderKey::Backspace,
                (KeyCode::Up, _) | (KeyCode::Char('p' | 'k'), true) => FinderKey::Up,
                (KeyCode::Down, _) | (KeyCode::Char('n' | 'j'), true) => FinderKey::Down,
                (KeyCode::Char(c), false) => FinderKey::Char(c),
                _ => return Vec::new(),
            };
            return app.finder_key(k);
        }
        Some(Overlay::Help) => {
            // Any key closes help; the ones that mean something still act.
            app.overlay = None;
            if ev.code == KeyCode::Esc
                || ev.code == KeyCode::Char('?')
                || ev.code == KeyCode::Char('q')
            {
                return Vec::new();
            }
        }
        _ => {}
    }
    let mode = if matches!(app.overlay, Some(Overlay::Confirm(_))) {
        Mode::Confirm
    } else {
        Mode::Pane(app.focus)
    };
    let key = Key::from_event(ev);
    match st.buffer.press(keymap, mode, key) {
        Lookup::Matched(a) => {
            st.hints.clear();
            // In a confirmation only yes/no mean anything: nothing else slips through.
            if mode == Mode::Confirm && !matches!(a, Action::Confirm | Action::Deny) {
                return Vec::new();
            }
            app.update(a)
        }
        Lookup::Pending(h) => {
            st.hints = h.into_iter().map(|(k, d)| (k.label(), d)).collect();
            Vec::new()
        }
        Lookup::Cancelled | Lookup::NotFound => {
            st.hints.clear();
            Vec::new()
        }
    }
}
