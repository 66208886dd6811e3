//! `{{name}}` placeholders. A template is parsed once per field and rendered once per matrix cell, so
//! large matrices cost only string concatenation.

use std::borrow::Cow;

/// A piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// A placeholder: the parameter name and the placeholder exactly as written (`{{ seed }}`).
    Param {
        name: String,
        raw: String,
    },
}

/// A string split into literal text and `{{name}}` placeholders. Whitespace inside the braces is
/// allowed; braces around anything that is not an identifier are literal text, but `{{name` with no
/// `}}` after the name is an error: it is a placeholder someone forgot to close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// The parsed template, or the unclosed placeholder as written up to the end of its name (`{{x`).
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(at) = rest.find("{{") {
            match placeholder(&rest[at..]) {
                Some((name, len)) => {
                    text.push_str(&rest[..at]);
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Param {
                        name: name.to_string(),
                        raw: rest[at..at + len].to_string(),
                    });
                    rest = &rest[at + len..];
                }
                None => {
                    if let Some(len) = unclosed(&rest[at..]) {
                        return Err(rest[at..at + len].to_string());
                    }
                    // Keep one brace and look again, so `{{{x}}}` still finds `{{x}}`.
                    text.push_str(&rest[..=at]);
                    rest = &rest[at + 1..];
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The placeholders, in order, as (name, raw text).
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Param { name, raw } => Some((name.as_str(), raw.as_str())),
            Part::Text(_) => None,
        })
    }

    /// Renders with `lookup`; the first unknown name is the error.
    pub fn render<'v>(
        &self,
        lookup: impl Fn(&str) -> Option<Cow<'v, str>>,
    ) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Param { name, .. } => match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => return Err(name.clone()),
                },
            }
        }
        Ok(out)
    }

    /// Resolves each placeholder to its index in `keys`, for fast repeated rendering. The error is the
    /// first placeholder (name, raw) that is not a key.
    pub fn bind<'a>(&'a self, keys: &[&str]) -> Result<Bound, (&'a str, &'a str)> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            parts.push(match part {
                Part::Text(t) => BoundPart::Text(t.clone()),
                Part::Param { name, raw } => match keys.iter().position(|k| k == name) {
                    Some(i) => BoundPart::Key(i),
                    None => return Err((name, raw)),
                },
            });
        }
        Ok(Bound { parts })
    }
}

#[derive(Clone, Debug)]
enum BoundPart {
    Text(String),
    Key(usize),
}

/// A template whose placeholders are indices into a list of keys.
#[derive(Clone, Debug, Default)]
pub struct Bound {
    parts: Vec<BoundPart>,
}

impl Bound {
    /// Renders with `value(key_index)` for each placeholder.
    pub fn render<'v>(&self, value: impl Fn(usize) -> &'v str) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                BoundPart::Text(t) => out.push_str(t),
                BoundPart::Key(i) => out.push_str(value(*i)),
            }
        }
        out
    }

    /// The key indices used.
    pub fn keys(&self) -> impl Iterator<Item = usize> + '_ {
        self.parts.iter().filter_map(|p| match p {
            BoundPart::Key(i) => Some(*i),
            BoundPart::Text(_) => None,
        })
    }
}

/// Substitutes `{{name}}` in `text`; the error is the first unclosed placeholder or unknown name.
pub fn substitute<'v>(
    text: &str,
    lookup: impl Fn(&str) -> Option<Cow<'v, str>>,
) -> Result<String, String> {
    Template::parse(text)?.render(lookup)
}

/// Whether `s` is an identifier: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// If `s` starts with a placeholder, its name and total length in bytes.
fn placeholder(s: &str) -> Option<(&str, usize)> {
    let inner_start = 2;
    let close = s[inner_start..].find("}}")? + inner_start;
    let name = s[inner_start..close].trim();
    is_identifier(name).then_some((name, close + 2))
}

/// If `s` (starting at `{{`) opens a placeholder that is never closed, the length of `{{name`: the
/// name ends the line or the text, or is followed by a single `}`.
fn unclosed(s: &str) -> Option<usize> {
    let after = &s[2..];
    let inner = after.trim_start_matches([' ', '\t']);
    let name_len = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    if !is_identifier(&inner[..name_len]) {
        return None;
    }
    let len = s.len() - inner.len() + name_len;
    let tail = inner[name_len..].trim_start_matches([' ', '\t']);
    let ends_line = tail.is_empty() || tail.starts_with(['\n', '\r']);
    let single_close = tail.starts_with('}') && !tail.starts_with("}}");
    (ends_line || single_close).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<Cow<'static, str>> {
        match name {
            "seed" => Some("0".into()),
            "model" => Some("gcn".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_with_and_without_spaces() {
        assert_eq!(
            substitute("run --seed {{seed}} --model {{ model }}", lookup),
            Ok("run --seed 0 --model gcn".to_string())
        );
    }

    #[test]
    fn non_placeholders_stay_literal() {
        assert_eq!(
            substitute("awk '{print $1}' {{ }} {{a b}} {{1x}} {{", lookup),
            Ok("awk '{print $1}' {{ }} {{a b}} {{1x}} {{".to_string())
        );
        assert_eq!(substitute("{{{seed}}}", lookup), Ok("{0}".to_string()));
    }

    #[test]
    fn unclosed_placeholder_is_an_error() {
        assert_eq!(substitute("x {{seed", lookup), Err("{{seed".to_string()));
        assert_eq!(
            substitute("x {{ seed \nnext", lookup),
            Err("{{ seed".to_string())
        );
        assert_eq!(
            substitute("--seed {{seed} --model {{model}}", lookup),
            Err("{{seed".to_string())
        );
        // Closed later on the line, or not a name: literal as before.
        assert_eq!(
            substitute("{{a b}} {{seed}}", lookup),
            Ok("{{a b}} 0".to_string())
        );
    }

    #[test]
    fn unknown_name_is_reported() {
        assert_eq!(substitute("x {{lr}}", lookup), Err("lr".to_string()));
        let t = Template::parse("a {{ lr }} b").unwrap();
        assert_eq!(t.bind(&["seed"]).unwrap_err(), ("lr", "{{ lr }}"));
    }

    #[test]
    fn bound_renders_by_index() {
        let t = Template::parse("out/{{model}}-{{seed}}").unwrap();
        let b = t.bind(&["seed", "model"]).unwrap();
        assert_eq!(b.render(|i| ["1", "gat"][i]), "out/gat-1");
        assert_eq!(b.keys().collect::<Vec<_>>(), vec![1, 0]);
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("seed"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("a-b"));
    }
}
