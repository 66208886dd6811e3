//! The TUI's configuration: key syntax, the keymap trie, themes and `config.toml`.
//!
//! Everything has an embedded default, and user files only override what they name. A mistake in a user
//! file never stops the app: it becomes a `path:line:col: message` warning, the bad part is skipped and
//! the defaults stand in.

pub mod keymap;
pub mod keys;
pub mod settings;
pub mod theme;

use std::ffi::OsString;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use keymap::{KeyBuffer, Keymap, Lookup, Mode, default_keymap_text, describe};
pub use keys::{Key, KeySeq};
pub use settings::{ExecutorKind, NotifyEvent, Poll, Settings, Webhook};
pub use theme::{ColorDepth, Theme};

/// Where sortie reads its configuration: `$SORTIE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/sortie`, else
/// `~/.config/sortie`. `None` only when there is no home directory at all.
pub fn config_dir() -> Option<PathBuf> {
    let home = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf());
    config_dir_from(|k| std::env::var_os(k), home.as_deref())
}

/// [`config_dir`] with the environment and home passed in, so tests need not touch the process env.
pub fn config_dir_from(
    env: impl Fn(&str) -> Option<OsString>,
    home: Option<&Path>,
) -> Option<PathBuf> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("SORTIE_CONFIG_DIR") {
        return Some(dir);
    }
    // The XDG spec says relative values are invalid and must be ignored.
    if let Some(xdg) = set("XDG_CONFIG_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join("sortie"));
    }
    // Deliberately not `ProjectDirs::config_dir`: on macOS that is ~/Library/Application Support,
    // which people on HPC clusters and dotfile repos don't expect.
    home.map(|h| h.join(".config").join("sortie"))
}

/// Command-line choices that win over `config.toml`.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Use this directory instead of [`config_dir`].
    pub config_dir: Option<PathBuf>,
    pub theme: Option<String>,
    pub keymap: Option<String>,
    pub read_only: Option<bool>,
}

/// Everything the app needs to start, plus the warnings to show in a banner.
#[derive(Clone, Debug)]
pub struct Config {
    pub settings: Settings,
    pub keymap: Keymap,
    pub theme: Theme,
    pub warnings: Vec<String>,
    /// The directory the files were looked up in (for `--version` and the help screen).
    pub dir: Option<PathBuf>,
}

impl Config {
    /// Loads settings, keymap and theme. Never fails: anything unusable is reported in `warnings`.
    pub fn load(overrides: &Overrides) -> Config {
        Config::load_with(overrides, ColorDepth::detect())
    }

    /// The built-in configuration only (keys, theme, settings), true colour: what headless drivers (tests,
    /// benches) use, with `dir` an empty folder standing for the user's config dir.
    pub fn built_in(dir: &Path) -> Config {
        Config::load_with(
            &Overrides {
                config_dir: Some(dir.to_path_buf()),
                ..Default::default()
            },
            ColorDepth::TrueColor,
        )
    }

    /// [`Config::load`] with an explicit colour depth (tests, `--no-color`).
    pub fn load_with(overrides: &Overrides, depth: ColorDepth) -> Config {
        let dir = overrides.config_dir.clone().or_else(config_dir);
        let (mut settings, mut warnings) = Settings::load_from(dir.as_deref());
        if let Some(theme) = &overrides.theme {
            settings.theme.clone_from(theme);
        }
        if let Some(keymap) = &overrides.keymap {
            settings.keymap.clone_from(keymap);
        }
        if let Some(ro) = overrides.read_only {
            settings.read_only = ro;
        }

        let (keymap, mut w) = load_keymap(&settings.keymap, dir.as_deref());
        warnings.append(&mut w);

        let theme = match Theme::load(&settings.theme, dir.as_deref(), depth) {
            Ok(theme) => {
                warnings.extend_from_slice(theme.warnings());
                theme
            }
            Err(e) => {
                warnings.push(format!("{e}; using the {} theme", theme::DEFAULT_THEME));
                Theme::builtin(depth)
            }
        };
        Config {
            settings,
            keymap,
            theme,
            warnings,
            dir,
        }
    }
}

/// `keymap = "default"` means the built-in keymap plus `keymap.toml` in the config dir if there is
/// one; anything else is a path to a user keymap (`~/` is the home directory, and a relative path is
/// relative to the config dir).
fn load_keymap(choice: &str, dir: Option<&Path>) -> (Keymap, Vec<String>) {
    if choice == "default" {
        match dir.map(|d| d.join("keymap.toml")) {
            Some(path) if path.exists() => Keymap::from_user_file(&path),
            _ => (Keymap::default(), Vec::new()),
        }
    } else {
        let home = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf());
        let path = match (choice.strip_prefix("~/"), home) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => PathBuf::from(choice),
        };
        let path = match dir {
            Some(d) if path.is_relative() => d.join(path),
            _ => path,
        };
        Keymap::from_user_file(&path)
    }
}

/// One config file's text, for turning byte spans into `path:line:col: message`.
pub(crate) struct Source<'t> {
    pub label: String,
    pub text: &'t str,
}

impl<'t> Source<'t> {
    pub fn new(label: impl fmt::Display, text: &'t str) -> Self {
        Source {
            label: label.to_string(),
            text,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// `path:line:col` of a span's start.
    pub fn loc(&self, span: Range<usize>) -> String {
        let (line, col) = self.line_col(span.start);
        format!("{}:{line}:{col}", self.label)
    }

    pub fn at(&self, span: Range<usize>, message: impl fmt::Display) -> String {
        format!("{}: {message}", self.loc(span))
    }

    /// A TOML syntax error, located when toml knows where it is.
    pub fn toml_error(&self, err: &toml::de::Error, what: &str) -> String {
        let msg = err.message().trim_end();
        match err.span() {
            Some(span) => self.at(span, format_args!("{msg}; {what}")),
            None => format!("{}: {msg}; {what}", self.label),
        }
    }
}

/// The closest name to `word` among `names`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    names
        .into_iter()
        .map(|n| (edit_distance(word, n), n))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Edit distance where swapping two neighbours counts as one edit, the commonest typo (`qiut`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// ` (did you mean `x`?)` or nothing.
pub(crate) fn suggestion<'a>(word: &str, names: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(word, names).map_or_else(String::new, |n| format!(" (did you mean `{n}`?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_dir_prefers_env_then_xdg_then_home() {
        let home = Path::new("/home/ada");
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            config_dir_from(env(&[("SORTIE_CONFIG_DIR", "/etc/s")]), Some(home)),
            Some(PathBuf::from("/etc/s"))
        );
        assert_eq!(
            config_dir_from(env(&[("XDG_CONFIG_HOME", "/x")]), Some(home)),
            Some(PathBuf::from("/x/sortie"))
        );
        // Empty and relative values are ignored.
        assert_eq!(
            config_dir_from(
                env(&[("SORTIE_CONFIG_DIR", ""), ("XDG_CONFIG_HOME", "rel")]),
                Some(home)
            ),
            Some(PathBuf::from("/home/ada/.config/sortie"))
        );
        assert_eq!(config_dir_from(env(&[]), None), None);
    }

    #[test]
    fn line_col_counts_from_one() {
        let s = Source::new("f.toml", "a = 1\nbé = 2\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        assert_eq!(s.line_col(10), (2, 4));
        assert_eq!(s.at(6..7, "oops"), "f.toml:2:1: oops");
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let names = ["quit", "filter", "finder"];
        assert_eq!(did_you_mean("quti", names), Some("quit"));
        assert_eq!(did_you_mean("fnder", names), Some("finder"));
        assert_eq!(did_you_mean("launch", names), None);
    }

    #[test]
    fn bundle_loads_from_an_empty_dir_without_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let over = Overrides {
            config_dir: Some(dir.path().to_path_buf()),
            ..Overrides::default()
        };
        let cfg = Config::load_with(&over, ColorDepth::TrueColor);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert_eq!(cfg.theme.name(), "dark");
        assert_eq!(cfg.settings, Settings::default());
    }

    #[test]
    fn keymap_setting_may_name_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            "keymap = \"keys/mine.toml\"\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(
            dir.path().join("keys/mine.toml"),
            "[normal]\n\"<C-c>\" = \"quit\"\n",
        )
        .unwrap();
        let over = Overrides {
            config_dir: Some(dir.path().to_path_buf()),
            ..Overrides::default()
        };
        let cfg = Config::load_with(&over, ColorDepth::Ansi256);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert_eq!(
            cfg.keymap
                .keys_for(Mode::Normal, &crate::tui::action::Action::Quit),
            ["q", "Ctrl-c"]
        );
        // A keymap that was asked for but is missing is worth a warning.
        let over = Overrides {
            keymap: Some("nope.toml".into()),
            ..over
        };
        let cfg = Config::load_with(&over, ColorDepth::Ansi256);
        assert_eq!(cfg.warnings.len(), 1);
        assert!(cfg.warnings[0].contains("cannot read keymap"));
    }

    #[test]
    fn bundle_falls_back_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), "theme = \"nope\"\n").unwrap();
        std::fs::write(
            dir.path().join("keymap.toml"),
            "[normal]\n\"x\" = \"quit\"\n",
        )
        .unwrap();
        let over = Overrides {
            config_dir: Some(dir.path().to_path_buf()),
            read_only: Some(true),
            ..Overrides::default()
        };
        let cfg = Config::load_with(&over, ColorDepth::TrueColor);
        assert_eq!(cfg.theme.name(), "dark");
        assert!(cfg.settings.read_only);
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0].contains("no theme named `nope`"));
        let x = Key::from_event(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char('x'),
            crossterm::event::KeyModifiers::NONE,
        ));
        assert_eq!(
            cfg.keymap.lookup(Mode::Normal, &[x]),
            Lookup::Matched(crate::tui::action::Action::Quit)
        );
    }
}
