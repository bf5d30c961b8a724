//! Label maps: class or tag names in model output order (saved as `labels.json` in a run).

use serde::{Deserialize, Serialize};

/// Names in output order; index `i` of a model output is `names[i]`. Serialises as
/// `{"names": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMap {
    names: Vec<String>,
}

impl LabelMap {
    pub fn from_names(names: Vec<String>) -> Self {
        Self { names }
    }
    /// Position of `name`, if present.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
    /// Name at `i`, or `"?"` when `i` is out of range.
    pub fn name(&self, i: usize) -> &str {
        self.names.get(i).map(String::as_str).unwrap_or("?")
    }
    pub fn names(&self) -> &[String] {
        &self.names
    }
    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_name_and_json_round_trip() {
        let m = LabelMap::from_names(vec!["positive".into(), "negative".into(), "sarcastic".into()]);
        assert_eq!((m.len(), m.index("negative"), m.index("x"), m.name(2), m.name(9)), (3, Some(1), None, "sarcastic", "?"));
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"names":["positive","negative","sarcastic"]}"#);
        assert_eq!(serde_json::from_str::<LabelMap>(&json).unwrap(), m);
    }
}
