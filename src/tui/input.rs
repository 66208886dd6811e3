//! From key presses to actions: overlays that take text get the keys first, then the keymap trie for the
//! focused pane (with chords pending until they match, fail, or Esc cancels them).

use super::action::{Action, Edit};
use super::app::{App, Effect, Overlay};
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
    // Overlays that take text get the keys first, as edits: the model changes only in `update`.
    let edit = match &app.overlay {
        Some(Overlay::Input(_)) => match ev.code {
            KeyCode::Enter => Some(Edit::Enter),
            KeyCode::Esc => Some(Edit::Esc),
            KeyCode::Backspace => Some(Edit::Backspace),
            KeyCode::Tab => Some(Edit::Tab),
            KeyCode::Char(c) if !ev.modifiers.contains(KeyModifiers::CONTROL) => {
                Some(Edit::Char(c))
            }
            _ => return Vec::new(),
        },
        Some(Overlay::Finder(_)) => match (ev.code, ev.modifiers.contains(KeyModifiers::CONTROL)) {
            (KeyCode::Enter, _) => Some(Edit::Enter),
            (KeyCode::Esc, _) => Some(Edit::Esc),
            (KeyCode::Backspace, _) => Some(Edit::Backspace),
            (KeyCode::Up, _) | (KeyCode::Char('p' | 'k'), true) => Some(Edit::Up),
            (KeyCode::Down, _) | (KeyCode::Char('n' | 'j'), true) => Some(Edit::Down),
            (KeyCode::Char(c), false) => Some(Edit::Char(c)),
            _ => return Vec::new(),
        },
        _ => None,
    };
    if let Some(e) = edit {
        return app.update(Action::Edit(e));
    }
    let mut effects = Vec::new();
    if matches!(app.overlay, Some(Overlay::Help)) {
        // Any key closes help; the ones that mean something still act.
        effects = app.update(Action::Back);
        if ev.code == KeyCode::Esc || ev.code == KeyCode::Char('?') || ev.code == KeyCode::Char('q')
        {
            return effects;
        }
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
                return effects;
            }
            effects.extend(app.update(a));
            effects
        }
        Lookup::Pending(h) => {
            st.hints = h.into_iter().map(|(k, d)| (k.label(), d)).collect();
            effects
        }
        Lookup::Cancelled | Lookup::NotFound => {
            st.hints.clear();
            effects
        }
    }
}
