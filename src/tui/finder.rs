//! The Ctrl-p finder: fuzzy matching (nucleo's matcher) over runs, steps and metrics, with the matched
//! characters' positions kept for highlighting.

use super::data::Snapshot;
use nucleo::Matcher;
use nucleo::Utf32Str;
use nucleo::pattern::{CaseMatching, Normalization, Pattern};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinderKind {
    Run,
    Step,
    Metric,
    /// A Slurm job of the Jobs pane.
    Job,
    /// An Optuna study of the Trials pane.
    Study,
    /// A trial of the selected study.
    Trial,
}

impl FinderKind {
    pub fn label(&self) -> &'static str {
        match self {
            FinderKind::Run => "run",
            FinderKind::Step => "step",
            FinderKind::Metric => "metric",
            FinderKind::Job => "job",
            FinderKind::Study => "study",
            FinderKind::Trial => "trial",
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

#[derive(Clone, Copy, Debug, PartialEq)]
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

/// The items the finder offers: the runs, the selected run's steps and metrics, the Slurm jobs
/// (with the run and step they belong to, so a run id finds its jobs too), the studies and the selected
/// study's trials (with their params, so `lr=0.01` finds them).
pub fn items(
    snap: &Snapshot,
    jobs: Option<&crate::slurm::poller::JobsSnapshot>,
    trials: &super::trials::TrialsView,
) -> Vec<FinderItem> {
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
    for j in jobs.map(|j| j.jobs.as_slice()).unwrap_or_default() {
        let link = match super::data::job_target(&snap.job_links, &j.id) {
            Some(super::data::JobTarget::Step(l)) => format!(" {} {}", l.run, l.step),
            Some(super::data::JobTarget::Array { run, .. }) => format!(" {run}"),
            None => String::new(),
        };
        v.push(FinderItem {
            kind: FinderKind::Job,
            text: format!("{} {} {}{link}", j.id, j.name, j.state.code()),
            target: j.id.clone(),
        });
    }
    for (i, s) in trials.data.studies.iter().enumerate() {
        v.push(FinderItem {
            kind: FinderKind::Study,
            text: format!("{} {}", s.study.name, s.source.display()),
            target: i.to_string(),
        });
    }
    if let Some(s) = trials.study() {
        for t in &s.study.trials {
            let mut text = format!(
                "#{} {} {}",
                t.number,
                s.study.name,
                t.state.name().to_lowercase()
            );
            for (k, p) in t.params.iter() {
                text.push_str(&format!(" {k}={}", crate::trials::report::param_text(&p)));
            }
            v.push(FinderItem {
                kind: FinderKind::Trial,
                text,
                target: format!("{}:{}", trials.study_sel, t.number),
            });
        }
    }
    v
}

/// A study or trial item's target: the study's index, and the trial's number.
pub fn trial_target(target: &str) -> (usize, Option<i64>) {
    let (study, trial) = match target.split_once(':') {
        Some((s, t)) => (s, t.parse().ok()),
        None => (target, None),
    };
    (study.parse().unwrap_or(0), trial)
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
        // The candidates are rescored in place: the previous matches when narrowing, else every item
        // (in the same buffer, so a keystroke allocates nothing once the finder is open).
        let mut scored = std::mem::take(&mut self.matches);
        if !narrows {
            scored.clear();
            scored.extend((0..self.items.len()).map(|item| FinderMatch { item, score: 0 }));
        }
        // Big lists are scored on every core, each part with its own matcher, kept matches moved to
        // the front of the part.
        let threads = if scored.len() < 20_000 {
            1
        } else {
            crate::util::cores().min(8)
        };
        let chunk = scored.len().div_ceil(threads).max(1);
        let items = &self.items;
        let pattern = &pattern;
        let memo_key = MemoKey::new(pattern);
        let memo_key = memo_key.as_ref();
        let keep = move |part: &mut [FinderMatch]| {
            let mut scorer = Scorer::new(pattern, memo_key);
            let mut kept = 0;
            for i in 0..part.len() {
                let item = part[i].item;
                if let Some(score) = scorer.score(&items[item].text) {
                    part[kept] = FinderMatch { item, score };
                    kept += 1;
                }
            }
            kept
        };
        let kept: Vec<usize> = if threads == 1 {
            vec![keep(&mut scored)]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = scored
                    .chunks_mut(chunk)
                    .map(|part| scope.spawn(move || keep(part)))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
            })
        };
        let mut len = 0;
        for (k, n) in kept.into_iter().enumerate() {
            scored.copy_within(k * chunk..k * chunk + n, len);
            len += n;
        }
        scored.truncate(len);
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

/// When nucleo's score of a text is decided by a prefix of it, and how long that prefix is.
///
/// For a pattern of plain fuzzy words (no `^`, `$`, `'` or `!`), each of at least two ASCII characters,
/// and an ASCII text longer than every word, nucleo 0.5 reads only the text up to the match window's
/// end: the prefilter takes the first occurrence of the word's first character and the greedy path
/// from it, and the window ends at the last occurrence of the word's last character after that. So
/// the text up to the last occurrence (either case) of any word's last character decides the score.
/// Matrix sweeps give tens of thousands of names that agree up to there (`train[model=gcn,lr=…,seed=…]`
/// for `train`), and those are scored once.
struct MemoKey {
    /// The last character of each word, lowercase (nucleo folds the needle when case is ignored; a
    /// case-sensitive needle's character matches one of the two anyway).
    last: Vec<u8>,
    /// The longest word: shorter or equally long texts take nucleo's other paths.
    longest: usize,
}

impl MemoKey {
    fn new(pattern: &Pattern) -> Option<MemoKey> {
        use nucleo::pattern::AtomKind;
        let mut last = Vec::new();
        let mut longest = 0;
        for atom in &pattern.atoms {
            let Utf32Str::Ascii(needle) = atom.needle_text() else {
                return None;
            };
            if atom.negative || atom.kind != AtomKind::Fuzzy || needle.len() < 2 {
                return None;
            }
            last.push(needle[needle.len() - 1].to_ascii_lowercase());
            longest = longest.max(needle.len());
        }
        (!last.is_empty()).then_some(MemoKey { last, longest })
    }

    /// The prefix of `text` that decides its score, or None when the text does not qualify or cannot
    /// match (a word's last character is missing).
    fn prefix<'t>(&self, text: &'t str) -> Option<&'t [u8]> {
        let bytes = text.as_bytes();
        if bytes.len() <= self.longest || !text.is_ascii() {
            return None;
        }
        let mut end = 0;
        for &c in &self.last {
            end = end.max(last_of(bytes, c)? + 1);
        }
        Some(&bytes[..end])
    }
}

/// Position of the last `c` (a lowercase byte) in `bytes`, in either case: eight bytes at a time.
fn last_of(bytes: &[u8], c: u8) -> Option<usize> {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    let up = c.to_ascii_uppercase();
    let (lo_w, up_w) = (ONES * u64::from(c), ONES * u64::from(up));
    // The high bit of each byte that is zero, exactly (no borrow between bytes).
    let zero = |x: u64| !(((x & LOW7) + LOW7) | x) & HIGH;
    let mut end = bytes.len();
    while end >= 8 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[end - 8..end]);
        let w = u64::from_le_bytes(word);
        let hits = zero(w ^ lo_w) | zero(w ^ up_w);
        if hits != 0 {
            return Some(end - 8 + (63 - hits.leading_zeros() as usize) / 8);
        }
        end -= 8;
    }
    bytes[..end].iter().rposition(|&b| b == c || b == up)
}

/// Scores texts against one pattern with nucleo, remembering the score of each deciding prefix (see
/// [`MemoKey`]); it stops remembering when the texts share too little for that to pay.
struct Scorer<'a> {
    pattern: &'a Pattern,
    key: Option<&'a MemoKey>,
    matcher: Matcher,
    buf: Vec<char>,
    memo: std::collections::HashMap<&'a [u8], Option<u32>, BuildFx>,
    lookups: usize,
    hits: usize,
}

impl<'a> Scorer<'a> {
    fn new(pattern: &'a Pattern, key: Option<&'a MemoKey>) -> Scorer<'a> {
        Scorer {
            pattern,
            key,
            matcher: Matcher::new(nucleo::Config::DEFAULT),
            buf: Vec::new(),
            memo: Default::default(),
            lookups: 0,
            hits: 0,
        }
    }

    fn score(&mut self, text: &'a str) -> Option<u32> {
        let Some(prefix) = self.key.and_then(|k| k.prefix(text)) else {
            return self.nucleo(text);
        };
        self.lookups += 1;
        // Mostly distinct prefixes: hashing only adds to nucleo's cost.
        if self.lookups == 1024 && self.hits < 512 {
            self.key = None;
        }
        if let Some(&score) = self.memo.get(prefix) {
            self.hits += 1;
            return score;
        }
        let score = self.nucleo(text);
        self.memo.insert(prefix, score);
        score
    }

    fn nucleo(&mut self, text: &str) -> Option<u32> {
        self.pattern
            .score(Utf32Str::new(text, &mut self.buf), &mut self.matcher)
    }
}

/// FxHash (rustc's): a multiply and a rotate per 8 bytes, far cheaper than SipHash on short keys.
const FX_SEED: u64 = 0x517c_c1b7_2722_0a95;

#[derive(Default)]
struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut add = |w: u64| self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(FX_SEED);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            add(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        add(u64::from_le_bytes(tail));
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(FX_SEED);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type BuildFx = std::hash::BuildHasherDefault<Fx>;

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

    #[test]
    fn last_of_finds_the_last_byte_in_either_case() {
        let text = b"aXbxcx0123456789x_xyzXX..x.-N";
        for c in [b'x', b'n', b'a', b'z', b'.', b'0', b'q'] {
            for len in 0..=text.len() {
                let want = text[..len]
                    .iter()
                    .rposition(|b| b.to_ascii_lowercase() == c);
                assert_eq!(last_of(&text[..len], c), want, "{} in {len}", c as char);
            }
        }
    }

    #[test]
    fn remembered_scores_are_nucleos() {
        let mut texts: Vec<String> = Vec::new();
        for (i, model) in ["gcn", "gat", "sage", "Gin", "mlp"].iter().enumerate() {
            for seed in 0..40 {
                texts.push(format!(
                    "train[model={model},lr={},seed={seed}]",
                    [1e-3, 3e-4][i % 2]
                ));
                texts.push(format!("eval/{model}_{seed}/rank"));
            }
        }
        texts.extend(
            [
                "tr",
                "tra",
                "train",
                "rain",
                "TRAIN[x]",
                "xtrain",
                "t r a i n",
                "trainn",
                "ntrain",
                "val/metric_7",
                "café/train",
                "ab12cd train",
                "a\\b",
            ]
            .map(String::from),
        );
        let queries = [
            "tr", "train", "trai", "Train", "rn", "t n", "tr in", "gat", "sd0", "ain]", "^tr",
            "n$", "'rain", "!gcn", "tr !gat", "é", "ca", "r", "12",
        ];
        for q in queries {
            let pattern = Pattern::parse(q, CaseMatching::Smart, Normalization::Smart);
            let key = MemoKey::new(&pattern);
            let mut scorer = Scorer::new(&pattern, key.as_ref());
            let mut matcher = Matcher::new(nucleo::Config::DEFAULT);
            let mut buf = Vec::new();
            // Twice over, so the second round is answered from the memo.
            for t in texts.iter().chain(&texts) {
                let want = pattern.score(Utf32Str::new(t, &mut buf), &mut matcher);
                assert_eq!(scorer.score(t), want, "query {q:?}, text {t:?}");
            }
        }
        // Texts that share no prefix switch the memo off, and still score as nucleo does.
        let distinct: Vec<String> = (0..3000).map(|i| format!("{i:05}tr{i}")).collect();
        let pattern = Pattern::parse("tr", CaseMatching::Smart, Normalization::Smart);
        let key = MemoKey::new(&pattern);
        let mut scorer = Scorer::new(&pattern, key.as_ref());
        let mut matcher = Matcher::new(nucleo::Config::DEFAULT);
        let mut buf = Vec::new();
        for t in &distinct {
            let want = pattern.score(Utf32Str::new(t, &mut buf), &mut matcher);
            assert_eq!(scorer.score(t), want, "{t}");
        }
        assert!(scorer.key.is_none() && scorer.memo.len() <= 1024);
        // Plain fuzzy words qualify; anchors, exact words, negations and single characters do not.
        let key = |q| {
            MemoKey::new(&Pattern::parse(
                q,
                CaseMatching::Smart,
                Normalization::Smart,
            ))
        };
        assert!(key("train").is_some() && key("tr in").is_some());
        for q in ["^tr", "n$", "'rain", "!gcn", "t", "tr n", "é1"] {
            assert!(key(q).is_none(), "{q}");
        }
    }
}
