//! A trial's user or system attributes: a few (key, JSON value) pairs, the keys shared among a reader's
//! trials, in the order they were first set.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use std::sync::Arc;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attrs(Vec<(Arc<str>, Value)>);

impl Attrs {
    /// Sets an attribute; one set before keeps its place and takes the new value.
    pub fn insert(&mut self, key: Arc<str>, v: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = v,
            None => self.0.push((key, v)),
        }
    }

    /// Sets several; room for them is taken once, at their number.
    pub fn extend(&mut self, attrs: impl IntoIterator<Item = (Arc<str>, Value)>) {
        let attrs = attrs.into_iter();
        self.0.reserve_exact(attrs.size_hint().0);
        for (k, v) in attrs {
            self.insert(k, v);
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| &**k == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| &**k)
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

impl Serialize for Attrs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_second_set_replaces_in_place() {
        let mut a = Attrs::default();
        a.extend([("seed".into(), json!(1)), ("fold".into(), json!(2))]);
        a.insert("seed".into(), json!(3));
        assert_eq!(a.keys().collect::<Vec<_>>(), ["seed", "fold"]);
        assert_eq!(a.get("seed"), Some(&json!(3)));
        assert_eq!(a.len(), 2);
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"seed": 3, "fold": 2})
        );
    }
}
