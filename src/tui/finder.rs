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
    /// Character positions in `text` that matched, sorted.
    pub indices: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FinderState {
    pub query: String,
    pub items: Vec<FinderItem>,
    pub matches: Vec<FinderMatch>,
    pub selected: usize,
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
        };
        s.rematch();
        s
    }

    /// Re-scores every item for the current query, best first.
    pub fn rematch(&mut self) {
        self.selected = 0;
        if self.query.is_empty() {
            self.matches = (0..self.items.len())
                .map(|item| FinderMatch {
                    item,
                    indices: Vec::new(),
                })
                .collect();
            return;
        }
        let pattern = Pattern::parse(&self.query, CaseMatching::Smart, Normalization::Smart);
        let mut matcher = Matcher::new(nucleo::Config::DEFAULT);
        let mut buf = Vec::new();
        let mut scored: Vec<(u32, FinderMatch)> = Vec::new();
        for (i, it) in self.items.iter().enumerate() {
            let hay = Utf32Str::new(&it.text, &mut buf);
            let mut idx = Vec::new();
            if let Some(score) = pattern.indices(hay, &mut matcher, &mut idx) {
                idx.sort_unstable();
                idx.dedup();
                scored.push((
                    score,
                    FinderMatch {
                        item: i,
                        indices: idx.into_iter().map(|x| x as usize).collect(),
                    },
                ));
            }
        }
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.item.cmp(&b.1.item)));
        self.matches = scored.into_iter().map(|(_, m)| m).collect();
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
        assert_eq!(f.matches[0].indices, vec![12, 13, 14]);
        f.query = "vacc".into();
        f.rematch();
        assert_eq!(f.selected_item().unwrap().target, "b");
    }
}
