//! A trial's params, kept small: each is a shared (name, distribution) and the internal float Optuna
//! stores; the user's value (a categorical choice, an integer) is made only when asked for.

use super::Distribution;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use std::sync::Arc;

/// A param's name and the distribution it was drawn from, shared by every trial of a reader that drew
/// it so (`model::Interner`). `None`: the storage's distribution could not be decoded, or the storage
/// held no value for it; the param then shows as null.
#[derive(Debug, PartialEq)]
pub struct ParamSpace {
    pub name: Box<str>,
    pub distribution: Option<Distribution>,
}

/// The params of one trial in the order they were first set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(Vec<(Arc<ParamSpace>, f64)>);

impl Params {
    /// Sets a param; one set before keeps its place and takes the new space and value.
    pub fn set(&mut self, space: Arc<ParamSpace>, internal: f64) {
        match self.0.iter_mut().find(|(s, _)| s.name == space.name) {
            Some(entry) => *entry = (space, internal),
            None => self.0.push((space, internal)),
        }
    }

    /// Sets several; room for them is taken once, at their number (a trial's params come in a batch).
    pub fn extend(&mut self, params: impl IntoIterator<Item = (Arc<ParamSpace>, f64)>) {
        let params = params.into_iter();
        self.0.reserve_exact(params.size_hint().0);
        for (space, internal) in params {
            self.set(space, internal);
        }
    }

    fn entry(&self, name: &str) -> Option<&(Arc<ParamSpace>, f64)> {
        self.0.iter().find(|(s, _)| &*s.name == name)
    }

    /// The user's value; `None` for a param not set, or one whose internal value lies outside its
    /// distribution (a categorical index out of range).
    pub fn get(&self, name: &str) -> Option<Value> {
        self.entry(name).and_then(|(s, v)| external(s, *v))
    }

    /// The float Optuna stores (a categorical's index).
    pub fn internal(&self, name: &str) -> Option<f64> {
        self.entry(name).map(|(_, v)| *v)
    }

    pub fn distribution(&self, name: &str) -> Option<&Distribution> {
        self.entry(name)?.0.distribution.as_ref()
    }

    /// Each param with a value, as the user's value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Value)> {
        self.0
            .iter()
            .filter_map(|(s, v)| Some((&*s.name, external(s, *v)?)))
    }

    /// Every param's name, in order (one without a value too).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(s, _)| &*s.name)
    }

    /// The params with a known distribution, in order.
    pub fn distributions(&self) -> impl Iterator<Item = (&str, &Distribution)> {
        self.0
            .iter()
            .filter_map(|(s, _)| Some((&*s.name, s.distribution.as_ref()?)))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
}

fn external(space: &ParamSpace, internal: f64) -> Option<Value> {
    match &space.distribution {
        Some(d) => d.external(internal),
        None => Some(Value::Null),
    }
}

/// As a JSON object of the user's values, as `sortie trials --json` prints them.
impl Serialize for Params {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, &v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn space(name: &str, d: Option<Distribution>) -> Arc<ParamSpace> {
        Arc::new(ParamSpace {
            name: name.into(),
            distribution: d,
        })
    }

    #[test]
    fn values_are_the_users_and_a_second_set_keeps_the_first_place() {
        let opt = space(
            "opt",
            Some(Distribution::Categorical {
                choices: vec![json!("adam"), json!("sgd")],
            }),
        );
        let layers = space(
            "layers",
            Some(Distribution::Int {
                low: 1,
                high: 8,
                log: false,
                step: 1,
            }),
        );
        let mut p = Params::default();
        p.extend([(opt.clone(), 1.0), (layers, 3.0), (space("bad", None), 0.5)]);
        p.set(opt.clone(), 0.0);
        assert_eq!(p.names().collect::<Vec<_>>(), ["opt", "layers", "bad"]);
        assert_eq!(p.get("opt"), Some(json!("adam")));
        assert_eq!(p.get("layers"), Some(json!(3)));
        assert_eq!(p.internal("layers"), Some(3.0));
        // An undecodable distribution still shows the param, as null.
        assert_eq!(p.get("bad"), Some(Value::Null));
        assert_eq!(p.distribution("bad"), None);
        assert_eq!(p.distributions().count(), 2);
        // An index outside the choices has no user's value, but keeps its distribution.
        p.set(opt, 7.0);
        assert_eq!(p.get("opt"), None);
        assert!(p.distribution("opt").is_some());
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"layers": 3, "bad": null})
        );
        assert_eq!(p.len(), 3);
    }
}
