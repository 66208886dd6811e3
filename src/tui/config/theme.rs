//! Themes: semantic keys (`state.running`, `chart.series.0`, …) mapped to styles, with a palette,
//! `inherits`, and a fallback to xterm-256 colours or no colour at all.
//!
//! A theme file looks like
//!
//! ```toml
//! inherits = "dark"
//! [palette]
//! accent = "#7aa2f7"
//! [styles]
//! "border.focused" = "accent"
//! "state.failed" = { fg = "red", modifiers = ["bold"] }
//! ```
//!
//! Style keys may also sit at the top level, and may be nested (`[state] running = "blue"`).
//! Styles refer to colours by palette name, ANSI name or `#rrggbb`. A child theme replaces whole
//! styles and palette entries, and colours are resolved after merging, so a child that only changes
//! the palette re-tints everything its parent drew with it.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use indexmap::IndexMap;
use ratatui::style::{Color, Modifier, Style};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Source, suggestion};

pub const DEFAULT_THEME: &str = "dark";

const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../../themes/dark.toml")),
    ("light", include_str!("../../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../../themes/high-contrast.toml"),
    ),
    (
        "colour-blind",
        include_str!("../../../themes/colour-blind.toml"),
    ),
];

/// Every semantic key a theme may set. Their dotted prefixes (`state`, `chart.series`) are valid too
/// and act as fallbacks for the keys below them.
pub const KEYS: &[&str] = &[
    "text",
    "text.dim",
    "border",
    "border.focused",
    "title",
    "title.focused",
    "selection",
    "header",
    "footer",
    "footer.key",
    "match",
    "stale",
    "error",
    "warning",
    "state.pending",
    "state.queued",
    "state.running",
    "state.succeeded",
    "state.failed",
    "state.cancelled",
    "state.cached",
    "state.blocked",
    "chart.series.0",
    "chart.series.1",
    "chart.series.2",
    "chart.series.3",
    "chart.series.4",
    "chart.series.5",
    "chart.series.6",
    "chart.series.7",
    "chart.raw",
    "chart.axis",
    "chart.cursor",
    "log.match",
    "overlay",
    "overlay.border",
    "confirm.danger",
];

/// Highlights drawn only with a background; without colour they need reverse video to stay visible.
const HIGHLIGHTS: &[&str] = &["selection", "match", "log.match"];

const ANSI: &[(&str, Color)] = &[
    ("reset", Color::Reset),
    ("black", Color::Black),
    ("red", Color::Red),
    ("green", Color::Green),
    ("yellow", Color::Yellow),
    ("blue", Color::Blue),
    ("magenta", Color::Magenta),
    ("cyan", Color::Cyan),
    ("gray", Color::Gray),
    ("dark_gray", Color::DarkGray),
    ("light_red", Color::LightRed),
    ("light_green", Color::LightGreen),
    ("light_yellow", Color::LightYellow),
    ("light_blue", Color::LightBlue),
    ("light_magenta", Color::LightMagenta),
    ("light_cyan", Color::LightCyan),
    ("white", Color::White),
];

const MODIFIERS: &[(&str, Modifier)] = &[
    ("bold", Modifier::BOLD),
    ("dim", Modifier::DIM),
    ("italic", Modifier::ITALIC),
    ("underlined", Modifier::UNDERLINED),
    ("reversed", Modifier::REVERSED),
    ("crossed_out", Modifier::CROSSED_OUT),
];

/// How many colours the terminal can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorDepth {
    TrueColor,
    /// `#rrggbb` becomes the nearest xterm-256 colour.
    Ansi256,
    /// `NO_COLOR`: modifiers only.
    NoColor,
}

impl ColorDepth {
    /// From `NO_COLOR` (any non-empty value) and `COLORTERM` (`truecolor` or `24bit`).
    pub fn detect() -> ColorDepth {
        let no_color = std::env::var("NO_COLOR").ok();
        let colorterm = std::env::var("COLORTERM").ok();
        ColorDepth::from_env(no_color.as_deref(), colorterm.as_deref())
    }

    pub fn from_env(no_color: Option<&str>, colorterm: Option<&str>) -> ColorDepth {
        if no_color.is_some_and(|v| !v.is_empty()) {
            ColorDepth::NoColor
        } else if colorterm
            .is_some_and(|v| v.eq_ignore_ascii_case("truecolor") || v.eq_ignore_ascii_case("24bit"))
        {
            ColorDepth::TrueColor
        } else {
            // Every terminal a login node is reached from does 256 colours; few advertise truecolor
            // through ssh, since COLORTERM is rarely forwarded.
            ColorDepth::Ansi256
        }
    }

    fn apply(self, c: Color) -> Option<Color> {
        match (self, c) {
            (ColorDepth::NoColor, _) => None,
            (ColorDepth::Ansi256, Color::Rgb(r, g, b)) => Some(Color::Indexed(ansi256(r, g, b))),
            (_, c) => Some(c),
        }
    }
}

/// A resolved theme: one ratatui style per semantic key.
#[derive(Clone, Debug, PartialEq)]
pub struct Theme {
    name: String,
    depth: ColorDepth,
    styles: HashMap<String, Style>,
    warnings: Vec<String>,
}

impl Theme {
    /// Loads a theme by name: `<user_dir>/themes/<name>.toml` first, then the built-in ones. `Err`
    /// means the theme can't be used at all (missing, unparsable, inheritance loop); bad entries are
    /// skipped and listed in [`Theme::warnings`]. Pass [`ColorDepth::detect`] unless testing.
    pub fn load(name: &str, user_dir: Option<&Path>, depth: ColorDepth) -> Result<Theme, String> {
        let mut notes = Notes::default();
        let mut chain: Vec<RawTheme> = Vec::new();
        let mut visited: Vec<(String, String)> = Vec::new();
        let mut next = Some((name.to_string(), false, None::<String>));
        while let Some((want, builtin_only, inherited_at)) = next.take() {
            let found = find(&want, user_dir, builtin_only).map_err(|e| match &inherited_at {
                Some(loc) => format!("{loc}: {e}"),
                None => e,
            })?;
            if visited.iter().any(|(_, label)| *label == found.label) {
                let path: Vec<&str> = visited.iter().map(|(n, _)| n.as_str()).collect();
                return Err(format!(
                    "{}: themes inherit in a loop: {} → {want}",
                    inherited_at.unwrap_or_default(),
                    path.join(" → ")
                ));
            }
            visited.push((want.clone(), found.label.clone()));
            let src = Source::new(&found.label, &found.text);
            notes.file = chain.len();
            let raw = parse(&src, &mut notes)?;
            if let Some((parent, loc)) = &raw.inherits {
                // A user theme named like a built-in one may extend it: `dark.toml` with
                // `inherits = "dark"` means the built-in dark.
                let builtin_only = found.user && *parent == want;
                next = Some((parent.clone(), builtin_only, Some(loc.clone())));
            }
            chain.push(raw);
        }

        let mut palette: IndexMap<String, RawColor> = IndexMap::new();
        let mut raw_styles: IndexMap<String, RawStyle> = IndexMap::new();
        for raw in chain.into_iter().rev() {
            palette.extend(raw.palette);
            raw_styles.extend(raw.styles);
        }
        let mut styles = HashMap::new();
        for (key, raw) in raw_styles {
            let mut resolve = |c: &Option<RawColor>| {
                let c = c.as_ref()?;
                match resolve_color(&c.name, &palette) {
                    Ok(color) => depth.apply(color),
                    Err(e) => {
                        notes.list.push((c.file, c.at, format!("{}: {e}", c.loc)));
                        None
                    }
                }
            };
            let fg = resolve(&raw.fg);
            let bg = resolve(&raw.bg);
            let mut style = Style::default().add_modifier(raw.mods);
            if let Some(fg) = fg {
                style = style.fg(fg);
            }
            if let Some(bg) = bg {
                style = style.bg(bg);
            }
            if depth == ColorDepth::NoColor && raw.bg.is_some() && HIGHLIGHTS.contains(&&*key) {
                style = style.add_modifier(Modifier::REVERSED);
            }
            styles.insert(key, style);
        }
        notes.list.sort_by_key(|(file, at, _)| (*file, *at));
        Ok(Theme {
            name: name.to_string(),
            depth,
            styles,
            warnings: notes.list.into_iter().map(|(_, _, m)| m).collect(),
        })
    }

    /// The built-in default theme.
    pub fn builtin(depth: ColorDepth) -> Theme {
        // The embedded themes are tested to load, but never leave the app without a theme.
        Theme::load(DEFAULT_THEME, None, depth).unwrap_or_else(|_| Theme {
            name: DEFAULT_THEME.to_string(),
            depth,
            styles: HashMap::new(),
            warnings: Vec::new(),
        })
    }

    /// Theme names for `:theme` completion: the built-in ones, then the user's.
    pub fn names(user_dir: Option<&Path>) -> Vec<String> {
        let mut names: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
        let mut user: Vec<String> = user_dir
            .and_then(|d| std::fs::read_dir(d.join("themes")).ok())
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let path = e.ok()?.path();
                (path.extension()? == "toml")
                    .then(|| path.file_stem()?.to_str().map(String::from))?
            })
            .filter(|n| !names.contains(n))
            .collect();
        user.sort();
        names.append(&mut user);
        names
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn depth(&self) -> ColorDepth {
        self.depth
    }

    /// Entries that were skipped while loading, as `path:line:col: message`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The style for a semantic key, falling back through its parents and then `text`
    /// (`state.running` → `state` → `text`).
    pub fn style(&self, key: &str) -> Style {
        let mut k = key;
        loop {
            if let Some(s) = self.styles.get(k) {
                return *s;
            }
            match k.rfind('.') {
                Some(i) => k = &k[..i],
                None => break,
            }
        }
        self.styles.get("text").copied().unwrap_or_default()
    }
}

struct Found {
    label: String,
    text: String,
    user: bool,
}

fn find(name: &str, user_dir: Option<&Path>, builtin_only: bool) -> Result<Found, String> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(format!("`{name}` is not a theme name"));
    }
    if !builtin_only && let Some(dir) = user_dir {
        let path = dir.join("themes").join(format!("{name}.toml"));
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: cannot read theme ({e})", path.display()))?;
            return Ok(Found {
                label: path.display().to_string(),
                text,
                user: true,
            });
        }
    }
    match BUILTIN.iter().find(|(n, _)| *n == name) {
        Some((n, text)) => Ok(Found {
            label: format!("themes/{n}.toml (built-in)"),
            text: text.to_string(),
            user: false,
        }),
        None => {
            let names = Theme::names(user_dir);
            Err(format!(
                "no theme named `{name}`{} (available: {})",
                suggestion(name, names.iter().map(String::as_str)),
                names.join(", ")
            ))
        }
    }
}

/// Warnings with the file (in load order) and byte offset they point at, so they can be reported
/// in file order even though colours are only checked once the whole chain is merged.
#[derive(Default)]
struct Notes {
    file: usize,
    list: Vec<(usize, usize, String)>,
}

impl Notes {
    fn warn(&mut self, src: &Source, span: Range<usize>, msg: impl fmt::Display) {
        self.list.push((self.file, span.start, src.at(span, msg)));
    }
}

#[derive(Clone, Debug)]
struct RawColor {
    name: String,
    file: usize,
    at: usize,
    /// `path:line:col`, for errors found once the palette is known.
    loc: String,
}

impl RawColor {
    fn new(name: &str, src: &Source, notes: &Notes, span: Range<usize>) -> RawColor {
        RawColor {
            name: name.to_string(),
            file: notes.file,
            at: span.start,
            loc: src.loc(span),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct RawStyle {
    fg: Option<RawColor>,
    bg: Option<RawColor>,
    mods: Modifier,
}

#[derive(Default)]
struct RawTheme {
    inherits: Option<(String, String)>,
    palette: IndexMap<String, RawColor>,
    styles: IndexMap<String, RawStyle>,
}

type Value<'i> = Spanned<DeValue<'i>>;

fn parse(src: &Source, notes: &mut Notes) -> Result<RawTheme, String> {
    let root = DeTable::parse(src.text)
        .map_err(|e| src.toml_error(&e, "the theme is not used"))?
        .into_inner();
    let mut raw = RawTheme::default();
    for (k, v) in &root {
        match k.get_ref().as_ref() {
            "inherits" => match v.get_ref() {
                DeValue::String(s) => raw.inherits = Some((s.to_string(), src.loc(v.span()))),
                _ => notes.warn(src, v.span(), "`inherits` must be a theme name"),
            },
            "palette" => {
                let Some(table) = v.get_ref().as_table() else {
                    notes.warn(src, v.span(), "`palette` must be a table of name = colour");
                    continue;
                };
                for (name, colour) in table {
                    let checked = match colour.get_ref() {
                        DeValue::String(s) => parse_plain_color(s).map(|_| s),
                        _ => Err("a palette colour must be a string".into()),
                    };
                    match checked {
                        Ok(s) => {
                            let c = RawColor::new(s, src, notes, colour.span());
                            raw.palette.insert(name.get_ref().to_string(), c);
                        }
                        Err(e) => notes.warn(src, colour.span(), e),
                    }
                }
            }
            // An explicit section for styles keeps big themes readable.
            "styles" if v.get_ref().is_table() => {
                for (k, v) in v.get_ref().as_table().into_iter().flatten() {
                    walk(src, k.get_ref(), k.span(), v, &mut raw.styles, notes);
                }
            }
            key => walk(src, key, k.span(), v, &mut raw.styles, notes),
        }
    }
    Ok(raw)
}

fn is_known_key(key: &str) -> bool {
    KEYS.iter().any(|k| {
        *k == key
            || k.strip_prefix(key)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

fn colour(src: &Source, key: &str, v: &Value, notes: &mut Notes) -> Option<RawColor> {
    match v.get_ref() {
        DeValue::String(s) => Some(RawColor::new(s, src, notes, v.span())),
        _ => {
            notes.warn(src, v.span(), format!("`{key}` must be a colour string"));
            None
        }
    }
}

/// Reads one style, or a table of nested keys (`[state] running = "blue"`), or both at once.
fn walk(
    src: &Source,
    key: &str,
    key_span: Range<usize>,
    v: &Value,
    out: &mut IndexMap<String, RawStyle>,
    notes: &mut Notes,
) {
    let style = match v.get_ref() {
        DeValue::String(_) => Some(RawStyle {
            fg: colour(src, key, v, notes),
            ..RawStyle::default()
        }),
        DeValue::Table(table) => {
            let mut style: Option<RawStyle> = None;
            for (k, field) in table {
                let full = format!("{key}.{}", k.get_ref());
                match k.get_ref().as_ref() {
                    "fg" => style.get_or_insert_default().fg = colour(src, &full, field, notes),
                    "bg" => style.get_or_insert_default().bg = colour(src, &full, field, notes),
                    "modifiers" => {
                        style.get_or_insert_default().mods = modifiers(src, &full, field, notes);
                    }
                    _ => walk(src, &full, k.span(), field, out, notes),
                }
            }
            style
        }
        _ => {
            notes.warn(
                src,
                v.span(),
                format!("`{key}` must be a colour or a table {{ fg, bg, modifiers }}"),
            );
            None
        }
    };
    let Some(style) = style else {
        return;
    };
    if !is_known_key(key) {
        notes.warn(
            src,
            key_span,
            format!(
                "unknown theme key `{key}`{}",
                suggestion(key, KEYS.iter().copied())
            ),
        );
        return;
    }
    out.insert(key.to_string(), style);
}

fn modifiers(src: &Source, key: &str, v: &Value, notes: &mut Notes) -> Modifier {
    let valid = || {
        MODIFIERS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(items) = v.get_ref().as_array() else {
        notes.warn(
            src,
            v.span(),
            format!("`{key}` must be a list such as [\"bold\"]"),
        );
        return Modifier::empty();
    };
    let mut mods = Modifier::empty();
    for item in items.iter() {
        let name = item.get_ref().as_str().unwrap_or_default();
        match MODIFIERS.iter().find(|(n, _)| *n == name) {
            Some((_, m)) => mods |= *m,
            None => notes.warn(
                src,
                item.span(),
                format!(
                    "unknown modifier `{name}`{} (valid: {})",
                    suggestion(name, MODIFIERS.iter().map(|(n, _)| *n)),
                    valid()
                ),
            ),
        }
    }
    mods
}

fn parse_hex(s: &str) -> Result<Color, String> {
    let hex = s.strip_prefix('#').unwrap_or(s);
    let ok = hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit());
    if !ok {
        return Err(format!("`{s}` is not a #rrggbb colour"));
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0);
    Ok(Color::Rgb(byte(0), byte(2), byte(4)))
}

fn ansi_names() -> String {
    ANSI.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// A colour written directly: `#rrggbb` or an ANSI name.
fn parse_plain_color(s: &str) -> Result<Color, String> {
    if s.starts_with('#') {
        return parse_hex(s);
    }
    ANSI.iter()
        .find(|(n, _)| *n == s)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            format!(
                "unknown colour `{s}`{} (valid: #rrggbb or {})",
                suggestion(s, ANSI.iter().map(|(n, _)| *n)),
                ansi_names()
            )
        })
}

/// A colour in a style: `#rrggbb`, a palette name (which may shadow an ANSI name), or an ANSI name.
fn resolve_color(s: &str, palette: &IndexMap<String, RawColor>) -> Result<Color, String> {
    if s.starts_with('#') {
        return parse_hex(s);
    }
    if let Some(c) = palette.get(s) {
        return parse_plain_color(&c.name);
    }
    ANSI.iter()
        .find(|(n, _)| *n == s)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            let names = palette
                .keys()
                .map(String::as_str)
                .chain(ANSI.iter().map(|(n, _)| *n));
            let mut pal: Vec<&str> = palette.keys().map(String::as_str).collect();
            pal.sort_unstable();
            format!(
                "unknown colour `{s}`{} (valid: #rrggbb, a palette name: {}; or an ANSI name: {})",
                suggestion(s, names),
                if pal.is_empty() {
                    "none defined".to_string()
                } else {
                    pal.join(", ")
                },
                ansi_names()
            )
        })
}

/// The RGB value of xterm-256 colour `i` (16–255; the first 16 follow the user's palette).
fn xterm_rgb(i: u8) -> (u8, u8, u8) {
    if i >= 232 {
        let v = 8 + 10 * (i - 232);
        return (v, v, v);
    }
    let n = i - 16;
    let level = |x: u8| if x == 0 { 0 } else { 55 + 40 * x };
    (level(n / 36), level((n / 6) % 6), level(n % 6))
}

/// The nearest xterm-256 colour to an RGB one. Only 16–255 are candidates, since terminals let users
/// redefine 0–15 and the result would no longer be the theme's colour.
pub fn ansi256(r: u8, g: u8, b: u8) -> u8 {
    let dist = |i: u8| {
        let (x, y, z) = xterm_rgb(i);
        let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).pow(2);
        d(r, x) + d(g, y) + d(b, z)
    };
    (16..=255).min_by_key(|&i| dist(i)).unwrap_or(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, dir: Option<&Path>, depth: ColorDepth) -> (Theme, Vec<String>) {
        let t = Theme::load(name, dir, depth).unwrap_or_else(|e| panic!("{name}: {e}"));
        let w = t.warnings().to_vec();
        (t, w)
    }

    fn user_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("themes")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join("themes").join(format!("{name}.toml")), text).unwrap();
        }
        dir
    }

    #[test]
    fn every_builtin_theme_loads_cleanly_and_sets_every_key() {
        for (name, _) in BUILTIN {
            for depth in [
                ColorDepth::TrueColor,
                ColorDepth::Ansi256,
                ColorDepth::NoColor,
            ] {
                let (theme, warnings) = load(name, None, depth);
                assert!(warnings.is_empty(), "{name}: {warnings:#?}");
                for key in KEYS {
                    assert!(theme.styles.contains_key(*key), "{name} lacks {key}");
                }
            }
        }
        assert_eq!(
            Theme::names(None),
            ["dark", "light", "high-contrast", "colour-blind"]
        );
    }

    #[test]
    fn states_stay_distinct_without_colour() {
        // With NO_COLOR only modifiers tell failed and running from succeeded and queued.
        for (name, _) in BUILTIN {
            let (t, _) = load(name, None, ColorDepth::NoColor);
            let failed = t.style("state.failed");
            assert_eq!(failed.fg, None);
            assert!(failed.add_modifier.contains(Modifier::BOLD), "{name}");
            assert_ne!(t.style("state.pending"), t.style("state.running"), "{name}");
            assert!(
                t.style("selection")
                    .add_modifier
                    .contains(Modifier::REVERSED),
                "{name}"
            );
        }
    }

    #[test]
    fn hex_to_256() {
        assert_eq!(ansi256(0, 0, 0), 16);
        assert_eq!(ansi256(255, 255, 255), 231);
        assert_eq!(ansi256(255, 0, 0), 196);
        assert_eq!(ansi256(128, 128, 128), 244);
        assert_eq!(ansi256(0x87, 0xaf, 0xff), 111);
        assert_eq!(ansi256(0x7a, 0xa2, 0xf7), 111);
        assert_eq!(ansi256(0x1a, 0x1b, 0x26), 234);
        let (t, _) = load("dark", None, ColorDepth::Ansi256);
        assert!(matches!(
            t.style("border.focused").fg,
            Some(Color::Indexed(_))
        ));
    }

    #[test]
    fn depth_from_env() {
        use ColorDepth::*;
        assert_eq!(ColorDepth::from_env(None, Some("truecolor")), TrueColor);
        assert_eq!(ColorDepth::from_env(None, Some("24bit")), TrueColor);
        assert_eq!(ColorDepth::from_env(None, None), Ansi256);
        assert_eq!(ColorDepth::from_env(Some(""), Some("truecolor")), TrueColor);
        assert_eq!(ColorDepth::from_env(Some("1"), Some("truecolor")), NoColor);
    }

    #[test]
    fn inheritance_palette_and_fallback_chain() {
        let dir = user_dir(&[
            (
                "mine",
                r##"inherits = "dark"
[palette]
accent = "#ff0000"
[state]
fg = "#00ff00"
running = { fg = "accent", modifiers = ["italic"] }
"##,
            ),
            // A user theme may extend the built-in theme of the same name.
            ("dark", "inherits = \"dark\"\ntext = \"white\"\n"),
        ]);
        let (t, warnings) = load("mine", Some(dir.path()), ColorDepth::TrueColor);
        assert!(warnings.is_empty(), "{warnings:?}");
        // The child's palette re-tints the parent's styles.
        assert_eq!(t.style("border.focused").fg, Some(Color::Rgb(255, 0, 0)));
        let running = t.style("state.running");
        assert_eq!(running.fg, Some(Color::Rgb(255, 0, 0)));
        assert!(running.add_modifier.contains(Modifier::ITALIC));
        // A key nobody set falls back to its parent, then to `text`.
        assert_eq!(t.style("state.paused").fg, Some(Color::Rgb(0, 255, 0)));
        assert_eq!(t.style("nothing.here"), t.style("text"));
        // `mine` inherits `dark`, which is now the user's dark on top of the built-in one.
        assert_eq!(t.style("text").fg, Some(Color::White));
        let (plain, _) = load("dark", None, ColorDepth::TrueColor);
        assert_ne!(plain.style("text").fg, Some(Color::White));
        assert_eq!(
            Theme::names(Some(dir.path())),
            ["dark", "light", "high-contrast", "colour-blind", "mine"]
        );
    }

    #[test]
    fn loops_and_missing_themes_are_errors() {
        let dir = user_dir(&[
            ("a", "inherits = \"b\"\n"),
            ("b", "\ninherits = \"a\"\n"),
            ("orphan", "inherits = \"nope\"\n"),
        ]);
        let err = Theme::load("a", Some(dir.path()), ColorDepth::TrueColor).unwrap_err();
        assert!(
            err.ends_with("b.toml:2:12: themes inherit in a loop: a → b → a"),
            "{err}"
        );
        let err = Theme::load("orphan", Some(dir.path()), ColorDepth::TrueColor).unwrap_err();
        assert!(
            err.contains("orphan.toml:1:12: no theme named `nope`"),
            "{err}"
        );
        let err = Theme::load("drak", None, ColorDepth::TrueColor).unwrap_err();
        assert_eq!(
            err,
            "no theme named `drak` (did you mean `dark`?) (available: dark, light, high-contrast, colour-blind)"
        );
        assert!(Theme::load("../x", None, ColorDepth::TrueColor).is_err());
    }

    #[test]
    fn bad_entries_are_located_and_skipped() {
        let dir = user_dir(&[(
            "bad",
            r##"inherits = "dark"
[palette]
accent = "#12345"
sky = "bleu"
[styles]
"state.runing" = "red"
"state.failed" = { fg = "crimson", bg = "reset", modifiers = ["bold", "blink"] }
text = 5
"##,
        )]);
        let (t, warnings) = load("bad", Some(dir.path()), ColorDepth::TrueColor);
        let warnings: Vec<String> = warnings
            .iter()
            .map(|w| w.replace(&dir.path().display().to_string(), "$DIR"))
            .collect();
        insta::assert_snapshot!(warnings.join("\n"));
        // Good parts of a bad style survive.
        let failed = t.style("state.failed");
        assert_eq!(failed.bg, Some(Color::Reset));
        assert!(failed.add_modifier.contains(Modifier::BOLD));
    }

    #[test]
    fn no_color_drops_colours_but_keeps_modifiers() {
        let (t, _) = load("dark", None, ColorDepth::NoColor);
        for key in KEYS {
            let s = t.style(key);
            assert_eq!((s.fg, s.bg), (None, None), "{key}");
        }
        assert!(
            t.style("state.running")
                .add_modifier
                .contains(Modifier::BOLD)
        );
        assert!(
            t.style("state.cancelled")
                .add_modifier
                .contains(Modifier::DIM)
        );
    }
}
