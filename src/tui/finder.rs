//! The Ctrl-p finder: fuzzy matching (nucleo's matcher) over runs, steps and metrics, with the matched
//! characters' positions kept for highlighting.

use super::data::Snapshot;
use nucleo::Matcher;
use nucleo::Utf32Str;
use nucleo::pattern::{CaseMatching, Normalization, Pattern};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinderKind {
    Run,
    Step,
    Metric,
}

impl FinderKind {
    pub fn label(&self) -> &'static str {
        match self {
            FinderKind::Run => "run",
            FinderKind::Step => "step",
            FinderKind::Metric => "metric",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct FinderItem {
    pub kind: FinderKind,
    /// What is matched and shown.
    pub text: String,
    /// What selecting it jumps to (run id, step name, metric key).
    pub target: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FinderMatch {
    pub item: usize,
    pub score: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FinderState {
    pub query: String,
    pub items: Vec<FinderItem>,
    pub matches: Vec<FinderMatch>,
    pub selected: usize,
    /// The query `matches` were scored for: a query that extends it only re-scores those matches.
    scored_for: String,
}

/// The items the finder offers for a snapshot.
pub fn items(snap: &Snapshot) -> Vec<FinderItem> {
    let mut v = Vec::new();
    for r in &snap.runs {
        v.push(FinderItem {
            kind: FinderKind::Run,
            text: format!("{} {} {}", r.id, r.pipeline, r.state),
            target: r.id.clone(),
        });
    }
    for s in &snap.steps {
        v.push(FinderItem {
            kind: FinderKind::Step,
            text: s.name.clone(),
            target: s.name.clone(),
        });
    }
    for k in &snap.metric_keys {
        v.push(FinderItem {
            kind: FinderKind::Metric,
            text: k.clone(),
            target: k.clone(),
        });
    }
    v
}

impl FinderState {
    pub fn new(items: Vec<FinderItem>) -> FinderState {
        let mut s = FinderState {
            query: String::new(),
            items,
            matches: Vec::new(),
            selected: 0,
            scored_for: String::new(),
        };
        s.rematch();
        s
    }

    /// Scores items for the current query, best first. Typing more only narrows: when the new query
    /// extends the one `matches` were scored for, just those are re-scored. Match positions for
    /// highlighting are computed later, for the rows on screen only ([`FinderState::indices`]).
    pub fn rematch(&mut self) {
        self.selected = 0;
        if self.query.is_empty() {
            self.matches = (0..self.items.len())
                .map(|item| FinderMatch { item, score: 0 })
                .collect();
            self.scored_for.clear();
            return;
        }
        let pattern = Pattern::parse(&self.query, CaseMatching::Smart, Normalization::Smart);
        // A trailing backslash or a negation changes meaning as it grows: score everything then.
        let narrows = !self.scored_for.is_empty()
            && self.query.starts_with(&self.scored_for)
            && !self.query.contains('!')
            && !self.scored_for.ends_with('\\');
        let candidates: Vec<usize> = if narrows {
            self.matches.iter().map(|m| m.item).collect()
        } else {
            (0..self.items.len()).collect()
        };
        // Big lists are scored on every core, each with its own matcher.
        let threads = if candidates.len() < 20_000 {
            1
        } else {
            crate::util::cores().min(8)
        };
        let chunk = candidates.len().div_ceil(threads).max(1);
        let items = &self.items;
        let pattern = &pattern;
        let mut scored: Vec<FinderMatch> = std::thread::scope(|scope| {
            let handles: Vec<_> = candidates
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        let mut matcher = Matcher::new(nucleo::Config::DEFAULT);
                        let mut buf = Vec::new();
                        let mut out = Vec::with_capacity(part.len());
                        for &i in part {
                            let hay = Utf32Str::new(&items[i].text, &mut buf);
                            if let Some(score) = pattern.score(hay, &mut matcher) {
                                out.push(FinderMatch { item: i, score });
                            }
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        // Only the best rows are ever looked at in order: rank the top ones, leave the tail unsorted.
        let order =
            |a: &FinderMatch, b: &FinderMatch| b.score.cmp(&a.score).then(a.item.cmp(&b.item));
        const RANKED: usize = 2000;
        if scored.len() > RANKED {
            scored.select_nth_unstable_by(RANKED - 1, order);
            scored[..RANKED].sort_unstable_by(order);
        } else {
            scored.sort_unstable_by(order);
        }
        self.matches = scored;
        self.scored_for.clone_from(&self.query);
    }

    /// Character positions of `item`'s text that match the query, sorted, for highlighting.
    pub fn indices(&self, item: usize) -> Vec<usize> {
        if self.query.is_empty() {
            return Vec::new();
        }
        let pattern = Pattern::parse(&self.query, CaseMatching::Smart, Normalization::Smart);
        let mut matcher = Matcher::new(nucleo::Config::DEFAULT);
        let mut buf = Vec::new();
        let hay = Utf32Str::new(&self.items[item].text, &mut buf);
        let mut idx = Vec::new();
        pattern.indices(hay, &mut matcher, &mut idx);
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter().map(|x| x as usize).collect()
    }

    pub fn selected_item(&self) -> Option<&FinderItem> {
        self.matches
            .get(self.selected)
            .and_then(|m| self.items.get(m.item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzzy_matches_rank_and_highlight() {
        let items = vec![
            FinderItem {
                kind: FinderKind::Step,
                text: "train[model=gcn,seed=0]".into(),
                target: "a".into(),
            },
            FinderItem {
                kind: FinderKind::Metric,
                text: "val/acc".into(),
                target: "b".into(),
            },
        ];
        let mut f = FinderState::new(items);
        assert_eq!(f.matches.len(), 2);
        f.query = "gcn".into();
        f.rematch();
        assert_eq!(f.matches.len(), 1);
        assert_eq!(f.selected_item().unwrap().target, "a");
        assert_eq!(f.indices(f.matches[0].item), vec![12, 13, 14]);
        f.query = "vacc".into();
        f.rematch();
        assert_eq!(f.selected_item().unwrap().target, "b");
    }
}
