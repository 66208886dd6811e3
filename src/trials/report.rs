//! Studies as `sortie trials` prints them: the JSON document (a list of studies, each with its trials in
//! the user's values) and the text leaderboard.

use super::model::{Direction, Study, Trial, TrialState, float_value};
use serde_json::{Value, json};

/// RFC 3339 in UTC with microseconds, or null.
fn time_json(t: Option<f64>) -> Value {
    t.and_then(|s| chrono::DateTime::from_timestamp_micros((s * 1e6).round() as i64))
        .map(|d| Value::from(d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)))
        .unwrap_or(Value::Null)
}

pub fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::NotSet => "not_set",
        Direction::Minimize => "minimize",
        Direction::Maximize => "maximize",
    }
}

pub fn trial_json(t: &Trial) -> Value {
    json!({
        "number": t.number,
        "state": t.state.name(),
        "values": t.values.iter().map(|v| float_value(*v)).collect::<Vec<_>>(),
        "params": t.params,
        "intermediate": t.intermediate.iter()
            .map(|(k, v)| (k.to_string(), float_value(v)))
            .collect::<serde_json::Map<_, _>>(),
        "start": time_json(t.start),
        "end": time_json(t.end),
        "duration_s": t.duration().map(|d| (d * 1e6).round() / 1e6),
        "user_attrs": t.user_attrs,
        "system_attrs": t.system_attrs,
        "heartbeat": time_json(t.heartbeat),
    })
}

/// One study; `trials` limits which trials are listed (all, `&s.trials`, or the best).
pub fn study_json(source: &str, s: &Study, trials: &[impl AsRef<Trial>]) -> Value {
    let count = |st| s.count(st);
    json!({
        "name": s.name,
        "source": source,
        "directions": s.directions.iter().map(|d| direction_name(*d)).collect::<Vec<_>>(),
        "counts": {
            "complete": count(TrialState::Complete), "pruned": count(TrialState::Pruned),
            "fail": count(TrialState::Fail), "running": count(TrialState::Running),
            "waiting": count(TrialState::Waiting),
        },
        "best": s.best().map(|t| t.number),
        "last_change": time_json(s.last_change()),
        "importance": super::importance::ped_anova(s).map(|v| {
            v.into_iter().map(|(k, x)| (k, float_value(x))).collect::<serde_json::Map<_, _>>()
        }),
        "user_attrs": s.user_attrs,
        "trials": trials.iter().map(|t| trial_json(t.as_ref())).collect::<Vec<_>>(),
    })
}

/// The best trials: the best one of a single objective, the Pareto front of several (COMPLETE trials no
/// other complete trial dominates), in number order.
pub fn best_trials(s: &Study) -> Vec<&Trial> {
    if s.directions.len() <= 1 {
        return s.best().into_iter().collect();
    }
    // Losses: every objective as one to minimise.
    let loss = |t: &Trial| -> Vec<f64> {
        t.values
            .iter()
            .zip(&s.directions)
            .map(|(v, d)| if *d == Direction::Maximize { -v } else { *v })
            .collect()
    };
    let done: Vec<(&Trial, Vec<f64>)> = s
        .trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.values.len() == s.directions.len())
        .map(|t| (&**t, loss(t)))
        .collect();
    let on_front = if s.directions.len() == 2 {
        front_of_two(&done.iter().map(|(_, l)| [l[0], l[1]]).collect::<Vec<_>>())
    } else {
        front_by_pairs(&done.iter().map(|(_, l)| l.as_slice()).collect::<Vec<_>>())
    };
    done.iter()
        .zip(on_front)
        .filter(|(_, on)| *on)
        .map(|((t, _), _)| *t)
        .collect()
}

fn dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
}

/// Which losses no other one dominates, by comparing every pair: for three objectives or more.
fn front_by_pairs(losses: &[&[f64]]) -> Vec<bool> {
    losses
        .iter()
        .map(|l| !losses.iter().any(|m| dominates(m, l)))
        .collect()
}

/// [`front_by_pairs`] for two objectives in O(n log n), so the Trials pane can redraw the front of a
/// large study on every change: sorted by the first loss, a point is dominated when one with a smaller
/// first loss has a second loss no larger, or one with the same first loss has a smaller second. A
/// point with a NaN is never dominated and dominates nothing, as the pairwise rule has it.
fn front_of_two(losses: &[[f64; 2]]) -> Vec<bool> {
    let mut on = vec![true; losses.len()];
    let mut order: Vec<usize> = (0..losses.len())
        .filter(|&i| !losses[i][0].is_nan() && !losses[i][1].is_nan())
        .collect();
    order.sort_by(|&a, &b| {
        losses[a][0]
            .total_cmp(&losses[b][0])
            .then(losses[a][1].total_cmp(&losses[b][1]))
    });
    // The smallest second loss among points whose first loss is strictly smaller than the current one.
    let mut best_before: Option<f64> = None;
    let mut i = 0;
    while i < order.len() {
        let x = losses[order[i]][0];
        let group_end = order[i..]
            .iter()
            .position(|&k| losses[k][0] != x)
            .map_or(order.len(), |p| i + p);
        // Sorted by the second loss too, so the group's first point has its smallest.
        let group_min = losses[order[i]][1];
        for &k in &order[i..group_end] {
            let y = losses[k][1];
            on[k] = !(best_before.is_some_and(|b| b <= y) || group_min < y);
        }
        best_before = Some(best_before.map_or(group_min, |b| b.min(group_min)));
        i = group_end;
    }
    on
}

/// A value for a table cell: short, with infinities and NaN spelled out.
pub fn short(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.4e}")
    } else {
        format!("{:.6}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

pub fn param_text(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => n.as_f64().map(short).unwrap_or_default(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The leaderboard of one study as text lines: a summary line, then one row per trial.
pub fn table(source: &str, s: &Study, trials: &[impl AsRef<Trial>]) -> Vec<String> {
    let dirs: Vec<&str> = s.directions.iter().map(|d| direction_name(*d)).collect();
    let mut out = vec![format!(
        "study {} ({}) in {}: {} trials — {} complete, {} pruned, {} failed, {} running, {} waiting{}",
        s.name,
        dirs.join(", "),
        source,
        s.trials.len(),
        s.count(TrialState::Complete),
        s.count(TrialState::Pruned),
        s.count(TrialState::Fail),
        s.count(TrialState::Running),
        s.count(TrialState::Waiting),
        s.best()
            .map(|b| format!("; best #{} = {}", b.number, short(b.values[0])))
            .unwrap_or_default()
    )];
    let mut params: Vec<&str> = Vec::new();
    for t in trials {
        for k in t.as_ref().params.names() {
            if !params.contains(&k) {
                params.push(k);
            }
        }
    }
    let best = s.best().map(|t| t.number);
    let mut rows: Vec<Vec<String>> = vec![
        ["", "#", "state", "value"]
            .iter()
            .map(|h| h.to_string())
            .chain(params.iter().map(|p| p.to_string()))
            .chain(["duration".to_string()])
            .collect(),
    ];
    for t in trials.iter().map(AsRef::as_ref) {
        let mut row = vec![
            if Some(t.number) == best { "★" } else { "" }.to_string(),
            t.number.to_string(),
            t.state.name().to_lowercase(),
            t.values
                .iter()
                .map(|v| short(*v))
                .collect::<Vec<_>>()
                .join(", "),
        ];
        for p in &params {
            row.push(
                t.params
                    .get(p)
                    .map(|v| param_text(&v))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        row.push(
            t.duration()
                .map(crate::util::human_duration)
                .unwrap_or_else(|| "-".into()),
        );
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push(cells.join("  ").trim_end().to_string());
    }
    out
}

#[cfg(test)]
mod front_tests {
    use super::*;

    #[test]
    fn the_two_objective_front_equals_the_pairwise_one() {
        // Ties, duplicates, infinities and NaN: every case the sweep must agree on.
        let mut seed = 7u64;
        let next = |seed: &mut u64| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (*seed >> 33) % 12;
            match r {
                0 => f64::INFINITY,
                1 => f64::NEG_INFINITY,
                2 => f64::NAN,
                n => (n % 5) as f64,
            }
        };
        for _ in 0..300 {
            next(&mut seed);
            let n = 1 + (seed >> 40) as usize % 30;
            let pts: Vec<[f64; 2]> = (0..n).map(|_| [next(&mut seed), next(&mut seed)]).collect();
            let refs: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
            assert_eq!(front_of_two(&pts), front_by_pairs(&refs), "{pts:?}");
        }
    }
}
