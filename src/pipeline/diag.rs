//! Located, one-line error messages about a pipeline file, and the collector that gathers them so a
//! single `sortie check` shows every problem at once.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a pipeline file. `line` and `column` are 1-based; 0 means "no position" (the file
/// could not be read at all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub help: Option<String>,
    /// Worth saying, but the pipeline is still valid.
    pub warning: bool,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = if self.warning { "warning" } else { "error" };
        if self.line == 0 {
            write!(f, "{}: {level}: {}", self.file.display(), self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {level}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )?;
        }
        if let Some(help) = &self.help {
            write!(f, "; help: {help}")?;
        }
        Ok(())
    }
}

/// Every problem found in one pass, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics for one source text, turning byte spans into line:column.
pub(crate) struct Sink<'t> {
    file: PathBuf,
    text: &'t str,
    line_starts: Vec<usize>,
    diags: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl<'t> Sink<'t> {
    pub fn new(file: &Path, text: &'t str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Sink {
            file: file.to_path_buf(),
            text,
            line_starts,
            diags: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn text(&self) -> &'t str {
        self.text
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        // Spans always fall on char boundaries, but be safe with a lossy count.
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }

    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, message.into(), None);
    }

    pub fn error_help(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.push(span, message.into(), Some(help.into()));
    }

    /// A problem that does not stop the pipeline from running.
    pub fn warn(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = self.located(span, message.into(), None, true);
        self.warnings.push(d);
    }

    fn push(&mut self, span: Range<usize>, message: String, help: Option<String>) {
        let d = self.located(span, message, help, false);
        self.diags.push(d);
    }

    fn located(
        &self,
        span: Range<usize>,
        message: String,
        help: Option<String>,
        warning: bool,
    ) -> Diagnostic {
        let (line, column) = self.line_col(span.start);
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            message,
            help,
            warning,
        }
    }

    /// The warnings in file order, without repeats.
    pub fn take_warnings(&mut self) -> Vec<Diagnostic> {
        sorted_unique(std::mem::take(&mut self.warnings))
    }

    pub fn has_errors(&self) -> bool {
        !self.diags.is_empty()
    }

    /// The diagnostics in file order, without repeats (a bad `[defaults]` value can be found once per step).
    pub fn finish(self) -> Diagnostics {
        Diagnostics(sorted_unique(self.diags))
    }
}

fn sorted_unique(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diags.sort_by_key(|d| (d.line, d.column));
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| seen.insert((d.line, d.column, d.message.clone())));
    diags
}

/// A diagnostic with no position, for a file that cannot be read.
pub(crate) fn unlocated(file: &Path, message: String) -> Diagnostics {
    Diagnostics(vec![Diagnostic {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        message,
        help: None,
        warning: false,
    }])
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    // A long shared start also counts: `retry` for `retries`.
    let prefix = |c: &str| {
        word.chars()
            .zip(c.chars())
            .take_while(|(a, b)| a == b)
            .count()
            >= 4
    };
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, c)| d <= limit || prefix(c))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// A help text: "did you mean `x`? " when one is close, then the list of valid choices.
pub(crate) fn suggest(word: &str, what: &str, candidates: &[&str]) -> String {
    let list = candidates
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match closest(word, candidates.iter().copied()) {
        Some(c) => format!("did you mean `{c}`? {what}: {list}"),
        None => format!("{what}: {list}"),
    }
}

/// Edit distance where swapping two neighbours counts as one edit (`trian` → `train`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rolling rows: two back (for swaps), one back, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 0..a.len() {
        cur[0] = i + 1;
        for j in 0..b.len() {
            let mut d = (prev[j] + usize::from(a[i] != b[j]))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                d = d.min(before[j - 1] + 1);
            }
            cur[j + 1] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_in_characters() {
        let text = "a = 1\nβ = \"x\"\n";
        let sink = Sink::new(Path::new("p.toml"), text);
        assert_eq!(sink.line_col(0), (1, 1));
        assert_eq!(sink.line_col(4), (1, 5));
        assert_eq!(sink.line_col(6), (2, 1));
        // After the two-byte β the column counts characters.
        assert_eq!(sink.line_col(text.rfind('=').unwrap()), (2, 3));
    }

    #[test]
    fn display_is_one_line_per_diagnostic() {
        let mut sink = Sink::new(Path::new("dir/p.toml"), "x\ny\n");
        sink.error_help(2..3, "bad y", "fix it");
        sink.error(0..1, "bad x");
        let d = sink.finish();
        assert_eq!(
            d.to_string(),
            "dir/p.toml:1:1: error: bad x\ndir/p.toml:2:1: error: bad y; help: fix it"
        );
    }

    #[test]
    fn unreadable_file_has_no_position() {
        let d = unlocated(Path::new("p.toml"), "cannot read: gone".into());
        assert_eq!(d.to_string(), "p.toml: error: cannot read: gone");
    }

    #[test]
    fn suggestions_pick_near_names_only() {
        assert_eq!(closest("prepar", ["prepare", "train"]), Some("prepare"));
        assert_eq!(closest("trian", ["prepare", "train"]), Some("train"));
        assert_eq!(closest("zzz", ["prepare", "train"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("retry", "retries"), 3);
        assert_eq!(edit_distance("retry", "retry_backoff"), 8);
        assert_eq!(
            suggest("runn", "expected one of", &["run", "env"]),
            "did you mean `run`? expected one of: `run`, `env`"
        );
    }
}
