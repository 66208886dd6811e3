//! Parameter importance by PED-ANOVA, as Optuna 5.0 computes it by default
//! (`optuna/importance/_ped_anova`): for each param, the Pearson χ² divergence between a Parzen
//! estimate of where the top 10 % of COMPLETE trials put it and where all of them did, on a grid of at
//! most 50 cells, summed over the param's regimes (trials that share one distribution of it), scaled by
//! the squared top fraction, then normalised to sum to one. Deterministic, needs no forest, and cheap:
//! the grid is small whatever the number of trials.

use super::model::{Direction, Distribution, Study, Trial, TrialState};
use std::collections::BTreeSet;

const TARGET_QUANTILE: f64 = 0.1;
const N_STEPS: usize = 50;
const PRIOR_WEIGHT: f64 = 1.0;
const MIN_TRIALS_IN_REGIME: usize = 2;

/// Importances by param, largest first; `None` when the study is not single-objective (Optuna's Pareto
/// ranking of top trials is not followed here) or has no param.
pub fn ped_anova(study: &Study) -> Option<Vec<(String, f64)>> {
    let [dir] = study.directions.as_slice() else {
        return None;
    };
    let complete: Vec<&Trial> = study
        .trials
        .iter()
        .map(|t| &**t)
        .filter(|t| t.state == TrialState::Complete)
        .collect();
    let params: BTreeSet<&str> = complete
        .iter()
        .flat_map(|t| t.params.distributions().map(|(name, _)| name))
        .collect();
    if params.is_empty() {
        return None;
    }
    let trials: Vec<&Trial> = complete
        .into_iter()
        .filter(|t| !t.values.is_empty() && t.values.iter().all(|v| v.is_finite()))
        .collect();
    let mut raw: Vec<(String, f64)> = params.iter().map(|p| (p.to_string(), 0.0)).collect();
    if trials.len() > 1 {
        let sign = if *dir == Direction::Maximize {
            -1.0
        } else {
            1.0
        };
        let loss: Vec<f64> = trials.iter().map(|t| sign * t.values[0]).collect();
        let mut sorted = loss.clone();
        sorted.sort_by(f64::total_cmp);
        let cutoff_index = ((TARGET_QUANTILE * loss.len() as f64).ceil() as usize).max(1) - 1;
        let cutoff = sorted[cutoff_index];
        let top: Vec<bool> = loss.iter().map(|l| *l <= cutoff).collect();
        let n_top = top.iter().filter(|t| **t).count();
        let quantile = n_top as f64 / trials.len() as f64;
        for (name, value) in &mut raw {
            *value = param_importance(name, &trials, &top, n_top) * quantile * quantile;
        }
    }
    let sum: f64 = raw.iter().map(|(_, v)| v).sum();
    let n = raw.len() as f64;
    for (_, v) in &mut raw {
        *v = if sum == 0.0 { 1.0 / n } else { *v / sum };
    }
    raw.sort_by(|a, b| b.1.total_cmp(&a.1));
    Some(raw)
}

/// One param's importance before the quantile scaling: the regimes' divergences, weighted.
fn param_importance(name: &str, trials: &[&Trial], top: &[bool], n_top: usize) -> f64 {
    // Regimes: trials grouped by the distribution they drew this param from (none counts as one).
    let mut regimes: Vec<(Option<&Distribution>, Vec<usize>)> = Vec::new();
    for (i, t) in trials.iter().enumerate() {
        let d = t.params.distribution(name);
        match regimes.iter_mut().find(|(r, _)| *r == d) {
            Some((_, v)) => v.push(i),
            None => regimes.push((d, vec![i])),
        }
    }
    let mut total = 0.0;
    for (dist, members) in regimes {
        if members.len() < MIN_TRIALS_IN_REGIME {
            continue;
        }
        let Some(dist) = dist.filter(|d| !single(d)) else {
            continue;
        };
        let region: Vec<&Trial> = members.iter().map(|&i| trials[i]).collect();
        let target: Vec<&Trial> = members
            .iter()
            .filter(|&&i| top[i])
            .map(|&i| trials[i])
            .collect();
        if target.is_empty() {
            continue;
        }
        let alpha = target.len() as f64 / n_top as f64;
        let beta = region.len() as f64 / trials.len() as f64;
        total += alpha * alpha / beta * pearson_divergence(name, dist, &target, &region);
    }
    total
}

/// Whether a distribution holds one value only (Optuna's `single()`).
fn single(d: &Distribution) -> bool {
    match d {
        Distribution::Float {
            low, high, step, ..
        } => low == high || step.is_some_and(|s| high - low < s - 1e-12 * s.abs()),
        Distribution::Int {
            low,
            high,
            log,
            step,
        } => low == high || (!log && high - low < *step),
        Distribution::Categorical { choices } => choices.len() == 1,
    }
}

fn pearson_divergence(name: &str, d: &Distribution, target: &[&Trial], region: &[&Trial]) -> f64 {
    let top = grid_pdf(name, d, target);
    let all = grid_pdf(name, d, region);
    top.iter()
        .zip(&all)
        .map(|(t, a)| {
            let (t, a) = (t + 1e-12, a + 1e-12);
            a * (t / a - 1.0).powi(2)
        })
        .sum()
}

/// The Parzen estimate's probability of each grid cell, from the trials' cell counts.
fn grid_pdf(name: &str, d: &Distribution, trials: &[&Trial]) -> Vec<f64> {
    let counts = grid_counts(name, d, trials);
    let cells = counts.len();
    let observed: Vec<(usize, f64)> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(i, c)| (i, *c as f64))
        .collect();
    // Mixture weights: each occupied cell by its count, plus the prior.
    let mut weights: Vec<f64> = observed.iter().map(|(_, w)| *w).collect();
    if !observed.is_empty() {
        weights.push(PRIOR_WEIGHT);
    } else {
        weights.push(1.0);
    }
    let wsum: f64 = weights.iter().sum();
    let weights: Vec<f64> = weights.iter().map(|w| w / wsum).collect();
    if let Distribution::Categorical { .. } = d {
        let mut pdf = vec![0.0; cells];
        let n_kernels = observed.len() + 1;
        let base = PRIOR_WEIGHT / n_kernels as f64;
        // Each kernel: `base` on every choice plus one on its own, normalised; the prior is uniform.
        for (k, (cell, _)) in observed.iter().enumerate() {
            let row = base * cells as f64 + 1.0;
            for (c, p) in pdf.iter_mut().enumerate() {
                let mass = if c == *cell { base + 1.0 } else { base };
                *p += weights[k] * mass / row;
            }
        }
        let prior = weights[weights.len() - 1];
        for p in &mut pdf {
            *p += prior / cells as f64;
        }
        return pdf;
    }
    // Numeric: truncated normal kernels over cell indices 0..cells-1, Scott's bandwidth.
    let (low, high) = (0.0, (cells - 1) as f64);
    let obs: Vec<f64> = observed.iter().map(|(i, _)| *i as f64).collect();
    let w: Vec<f64> = observed.iter().map(|(_, c)| *c).collect();
    let mut mus = obs.clone();
    let mut sigmas = Vec::new();
    if !obs.is_empty() {
        let ws: f64 = w.iter().sum();
        let mean = obs.iter().zip(&w).map(|(o, w)| o * w).sum::<f64>() / ws;
        let var = obs
            .iter()
            .zip(&w)
            .map(|(o, w)| (o - mean).powi(2) * w)
            .sum::<f64>()
            / (ws - 1.0).max(1.0);
        let mut cum = Vec::with_capacity(w.len());
        let mut acc = 0.0;
        for x in &w {
            acc += x;
            cum.push(acc);
        }
        // numpy searchsorted: left finds the first cum >= q1, right the first cum > q3.
        let q1 = (ws / 4.0).floor();
        let q3 = (ws * 3.0 / 4.0).floor();
        let q1_idx = cum.iter().position(|c| *c >= q1).unwrap_or(cum.len());
        let q3_idx = cum.iter().position(|c| *c > q3).unwrap_or(cum.len());
        let last = obs.len() - 1;
        let iqr = obs[q3_idx.min(last)] - obs[q1_idx.min(last)];
        let sigma = (1.059 * (iqr / 1.34).min(var.sqrt()) * ws.powf(-0.2)).max(0.5 / 1.64);
        sigmas = vec![sigma; obs.len()];
    }
    mus.push((low + high) / 2.0);
    sigmas.push(high - low + 1.0);
    (0..cells)
        .map(|x| {
            let x = x as f64;
            mus.iter()
                .zip(&sigmas)
                .zip(&weights)
                .map(|((mu, s), wk)| {
                    let cell = gauss_mass((x - 0.5 - mu) / s, (x + 0.5 - mu) / s);
                    let all = gauss_mass((low - 0.5 - mu) / s, (high + 0.5 - mu) / s);
                    if all > 0.0 { wk * cell / all } else { 0.0 }
                })
                .sum()
        })
        .collect()
}

/// P(a < Z < b) for a standard normal Z, accurate in either tail.
fn gauss_mass(a: f64, b: f64) -> f64 {
    let r = std::f64::consts::FRAC_1_SQRT_2;
    if a > 0.0 {
        (libm::erfc(a * r) - libm::erfc(b * r)) / 2.0
    } else if b < 0.0 {
        (libm::erfc(-b * r) - libm::erfc(-a * r)) / 2.0
    } else {
        1.0 - (libm::erfc(-a * r) + libm::erfc(b * r)) / 2.0
    }
}

/// The grid cell of each trial's value of the param, counted.
fn grid_counts(name: &str, d: &Distribution, trials: &[&Trial]) -> Vec<usize> {
    match d {
        Distribution::Categorical { choices } => {
            let mut counts = vec![0; choices.len()];
            for t in trials {
                if let Some(i) = t
                    .params
                    .internal(name)
                    .and_then(|x| d.choice(x))
                    .and_then(|v| choices.iter().position(|c| c == v))
                {
                    counts[i] += 1;
                }
            }
            counts
        }
        Distribution::Float {
            low,
            high,
            log,
            step,
        } => {
            let n = match step {
                Some(s) if !log => (((high - low) / s).round_ties_even() as usize + 1).min(N_STEPS),
                _ => N_STEPS,
            };
            numeric_counts(name, *low, *high, *log, n, trials)
        }
        Distribution::Int {
            low,
            high,
            log,
            step,
        } => {
            let n = if *log {
                let size = (high - low + 1) as f64;
                ((size.ln() / 2f64.ln()).ceil() as usize + 1).min(N_STEPS)
            } else {
                ((((high - low) as f64) / *step as f64).round_ties_even() as usize + 1).min(N_STEPS)
            };
            numeric_counts(name, *low as f64, *high as f64, *log, n, trials)
        }
    }
}

fn numeric_counts(
    name: &str,
    low: f64,
    high: f64,
    log: bool,
    n: usize,
    trials: &[&Trial],
) -> Vec<usize> {
    let f = |x: f64| if log { x.ln() } else { x };
    let (lo, hi) = (f(low), f(high));
    let step = (hi - lo) / (n.max(2) - 1) as f64;
    let mut counts = vec![0; n.max(1)];
    for t in trials {
        let Some(v) = t.params.get(name).and_then(|v| v.as_f64()) else {
            continue;
        };
        // Midpoint ties go to the lower cell, as Optuna's grid does.
        let i = ((f(v) - lo) / step - 0.5).ceil();
        let i = i.clamp(0.0, (counts.len() - 1) as f64) as usize;
        counts[i] += 1;
    }
    counts
}
