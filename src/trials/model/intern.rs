//! What a reader's trials share instead of each holding a copy: param spaces (a name with its
//! distribution; a study has a handful, repeated in every trial) and attribute keys.

use super::params::ParamSpace;
use crate::trials::distribution;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

#[derive(Default)]
pub struct Interner {
    /// By the name's length, the name, and the distribution's JSON text as the storage holds it (`j…`)
    /// or `n` for none: no two (name, text) pairs share a key, whatever bytes they hold.
    spaces: HashMap<Box<str>, Arc<ParamSpace>>,
    keys: HashSet<Arc<str>>,
    /// Reused to build the lookup key of a space, so a lookup allocates nothing.
    key: String,
}

impl Interner {
    /// The space of a param drawn from the distribution `json` (Optuna's `distribution_json`), decoded
    /// the first time; `None` asks for one without a distribution. A distribution that does not decode
    /// gives a space without one too: the param shows as null.
    pub fn space(&mut self, name: &str, json: Option<&str>) -> Arc<ParamSpace> {
        use std::fmt::Write;
        self.key.clear();
        // Writing to a String cannot fail.
        let _ = write!(self.key, "{}:{name}", name.len());
        match json {
            Some(j) => {
                self.key.push('j');
                self.key.push_str(j);
            }
            None => self.key.push('n'),
        }
        if let Some(s) = self.spaces.get(self.key.as_str()) {
            return s.clone();
        }
        let space = Arc::new(ParamSpace {
            name: name.into(),
            distribution: json.and_then(|j| distribution::decode(j).ok()),
        });
        self.spaces.insert(self.key.as_str().into(), space.clone());
        space
    }

    /// An attribute key, shared.
    pub fn key(&mut self, k: &str) -> Arc<str> {
        if let Some(k) = self.keys.get(k) {
            return k.clone();
        }
        let k: Arc<str> = k.into();
        self.keys.insert(k.clone());
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_space_per_name_and_distribution() {
        let mut i = Interner::default();
        let json = r#"{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 1, "high": 8}}"#;
        let a = i.space("layers", Some(json));
        assert!(Arc::ptr_eq(&a, &i.space("layers", Some(json))));
        assert!(a.distribution.is_some());
        assert!(!Arc::ptr_eq(&a, &i.space("width", Some(json))));
        let bare = i.space("layers", None);
        assert!(bare.distribution.is_none() && !Arc::ptr_eq(&a, &bare));
        assert!(i.space("layers", Some("{")).distribution.is_none());
        assert!(Arc::ptr_eq(&i.key("seed"), &i.key("seed")));
    }
}
