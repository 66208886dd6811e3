//! A trial's intermediate values by step. Most studies report at evenly spaced steps (every epoch, every
//! 500 steps), so such a series keeps only its first step, the spacing and the values: half the memory of
//! (step, value) pairs, which any other series falls back to.

#[derive(Clone, Debug)]
pub struct Intermediate(Repr);

#[derive(Clone, Debug)]
enum Repr {
    /// Steps `first + i * stride`; `stride` ≥ 1, and 1 while there are fewer than two values.
    Even {
        first: i64,
        stride: i64,
        values: Vec<f64>,
    },
    /// Any other steps, sorted and distinct.
    Pairs(Vec<(i64, f64)>),
}

impl Default for Intermediate {
    fn default() -> Intermediate {
        Intermediate(Repr::Even {
            first: 0,
            stride: 1,
            values: Vec::new(),
        })
    }
}

impl Intermediate {
    /// Sets the value of a step, replacing one reported before for it.
    pub fn insert(&mut self, step: i64, v: f64) {
        if let Repr::Even {
            first,
            stride,
            values,
        } = &mut self.0
        {
            if values.is_empty() {
                (*first, *stride) = (step, 1);
                values.push(v);
                return;
            }
            if values.len() == 1 && step != *first {
                // The second step fixes the spacing.
                if let Some(gap) = step.checked_sub(*first).and_then(i64::checked_abs) {
                    *stride = gap;
                    if step > *first {
                        values.push(v);
                    } else {
                        *first = step;
                        values.insert(0, v);
                    }
                    return;
                }
            }
            match even_index(*first, *stride, step) {
                Some(i) if i >= 0 && (i as usize) < values.len() => {
                    values[i as usize] = v;
                    return;
                }
                Some(i) if i >= 0 && i as usize == values.len() => {
                    values.push(v);
                    return;
                }
                Some(-1) => {
                    *first = step;
                    values.insert(0, v);
                    return;
                }
                _ => self.0 = Repr::Pairs(self.iter().collect()),
            }
        }
        if let Repr::Pairs(pairs) = &mut self.0 {
            match pairs.binary_search_by_key(&step, |p| p.0) {
                Ok(i) => pairs[i].1 = v,
                Err(i) => pairs.insert(i, (step, v)),
            }
        }
    }

    pub fn get(&self, step: i64) -> Option<f64> {
        match &self.0 {
            Repr::Even {
                first,
                stride,
                values,
            } => {
                let i = usize::try_from(even_index(*first, *stride, step)?).ok()?;
                values.get(i).copied()
            }
            Repr::Pairs(pairs) => pairs
                .binary_search_by_key(&step, |p| p.0)
                .ok()
                .map(|i| pairs[i].1),
        }
    }

    /// (step, value) in step order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        (0..self.len()).map(move |i| self.at(i))
    }

    fn at(&self, i: usize) -> (i64, f64) {
        match &self.0 {
            Repr::Even {
                first,
                stride,
                values,
            } => (first + i as i64 * stride, values[i]),
            Repr::Pairs(pairs) => pairs[i],
        }
    }

    /// The newest step's value, with its step.
    pub fn last(&self) -> Option<(i64, f64)> {
        self.len().checked_sub(1).map(|i| self.at(i))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Even { values, .. } => values.len(),
            Repr::Pairs(pairs) => pairs.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gives back spare room, and goes back to the even form when out-of-order reports made pairs of
    /// steps that are evenly spaced after all.
    pub fn shrink_to_fit(&mut self) {
        match &mut self.0 {
            Repr::Even { values, .. } => values.shrink_to_fit(),
            Repr::Pairs(pairs) => match evenly(pairs) {
                Some(even) => self.0 = even,
                None => pairs.shrink_to_fit(),
            },
        }
    }
}

/// The index of `step` in an even series, if it lies on its grid (before the first one: negative).
fn even_index(first: i64, stride: i64, step: i64) -> Option<i64> {
    let d = step.checked_sub(first)?;
    (d % stride == 0).then_some(d / stride)
}

/// Sorted distinct pairs as an even series (allocated at its size), if their steps are evenly spaced.
fn evenly(pairs: &[(i64, f64)]) -> Option<Repr> {
    let first = pairs.first().map_or(0, |p| p.0);
    let stride = match pairs {
        [a, b, ..] => b.0.checked_sub(a.0)?,
        _ => 1,
    };
    let on_grid = pairs.iter().enumerate().all(|(i, p)| {
        (i as i64)
            .checked_mul(stride)
            .and_then(|o| first.checked_add(o))
            == Some(p.0)
    });
    on_grid.then(|| Repr::Even {
        first,
        stride,
        values: pairs.iter().map(|p| p.1).collect(),
    })
}

/// Reports in any order; a step reported twice keeps the later value. Allocated at its size.
impl FromIterator<(i64, f64)> for Intermediate {
    fn from_iter<I: IntoIterator<Item = (i64, f64)>>(iter: I) -> Intermediate {
        let mut pairs: Vec<(i64, f64)> = iter.into_iter().collect();
        // Stable, so of one step's reports the later stays last; keep that one.
        pairs.sort_by_key(|p| p.0);
        let mut distinct: Vec<(i64, f64)> = Vec::with_capacity(pairs.len());
        for p in pairs {
            match distinct.last_mut() {
                Some(l) if l.0 == p.0 => *l = p,
                _ => distinct.push(p),
            }
        }
        let mut me = Intermediate(Repr::Pairs(distinct));
        me.shrink_to_fit();
        me
    }
}

/// Equal when the same steps hold equal values (NaN equals nothing, as with floats).
impl PartialEq for Intermediate {
    fn eq(&self, other: &Intermediate) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn is_even(m: &Intermediate) -> bool {
        matches!(m.0, Repr::Even { .. })
    }

    #[test]
    fn evenly_spaced_steps_keep_only_values() {
        let mut m = Intermediate::default();
        for s in (0..100).step_by(10) {
            m.insert(s, s as f64);
        }
        assert!(is_even(&m));
        assert_eq!(m.get(30), Some(30.0));
        assert_eq!(m.get(35), None);
        assert_eq!(m.get(-10), None);
        assert_eq!(m.last(), Some((90, 90.0)));
        m.insert(35, 1.0);
        assert!(!is_even(&m));
        assert_eq!(m.get(35), Some(1.0));
        assert_eq!(m.len(), 11);
        let c: Intermediate = [(2, 1.0), (0, 0.0), (4, 2.0), (2, 3.0)]
            .into_iter()
            .collect();
        assert!(is_even(&c));
        assert_eq!(c.iter().collect::<Vec<_>>(), [(0, 0.0), (2, 3.0), (4, 2.0)]);
    }

    #[test]
    fn extreme_steps_fall_back_to_pairs() {
        let mut m = Intermediate::default();
        m.insert(i64::MIN, 1.0);
        m.insert(i64::MAX, 2.0);
        m.insert(0, 3.0);
        let want = [(i64::MIN, 1.0), (0, 3.0), (i64::MAX, 2.0)];
        assert_eq!(m.iter().collect::<Vec<_>>(), want);
        let c: Intermediate = want.into_iter().collect();
        assert_eq!(c, m);
    }

    proptest! {
        /// Whatever the steps and their order, the series answers as a map of step to last value would.
        #[test]
        fn it_is_a_map_of_steps(reports in prop::collection::vec((-6i64..40, 0u8..255), 0..40),
                                wide in any::<bool>()) {
            let scale = if wide { i64::MAX / 64 } else { 1 };
            let mut m = Intermediate::default();
            let mut want = BTreeMap::new();
            for (s, v) in &reports {
                m.insert(s * scale, f64::from(*v));
                want.insert(s * scale, f64::from(*v));
            }
            let want: Vec<(i64, f64)> = want.into_iter().collect();
            prop_assert_eq!(m.iter().collect::<Vec<_>>(), want.clone());
            let built: Intermediate = reports.iter().map(|(s, v)| (s * scale, f64::from(*v))).collect();
            prop_assert_eq!(built.iter().collect::<Vec<_>>(), want.clone());
            m.shrink_to_fit();
            prop_assert_eq!(m.iter().collect::<Vec<_>>(), want.clone());
            for s in -8..42 {
                let got = m.get(s * scale);
                prop_assert_eq!(got, want.iter().find(|p| p.0 == s * scale).map(|p| p.1));
            }
            prop_assert_eq!(m.last(), want.last().copied());
        }
    }
}
