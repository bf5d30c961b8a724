//! What a layer derives once from its parameters for prediction — a packed weight, a weight
//! with its batch norm folded in — kept beside the layer ([`DerivedCache`], a `#[module(skip)]`
//! field) and reused by every later call.
//!
//! The cache holds references to the tensors it was derived from (so their storage can neither
//! be freed and reused by another tensor, nor written in place) and checks them against the
//! layer's current ones on every call: a layer whose parameters were replaced (loaded, trained,
//! moved) derives again, never reads a stale value. A cloned layer starts with an empty cache.

use burn::backend::flex::FlexTensor;
use std::sync::{Arc, Mutex};

/// A value derived from some tensors, with those tensors.
pub struct DerivedCache<T> {
    slot: Mutex<Option<(Vec<FlexTensor>, Arc<T>)>>,
    /// How many times the value was derived (tests).
    #[cfg(test)]
    pub(crate) builds: std::sync::atomic::AtomicUsize,
}

impl<T> Default for DerivedCache<T> {
    fn default() -> Self {
        Self {
            slot: Mutex::new(None),
            #[cfg(test)]
            builds: Default::default(),
        }
    }
}

impl<T> Clone for DerivedCache<T> {
    /// An empty cache: a clone may get other parameters (`Module::valid`, a loaded record).
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<T> std::fmt::Debug for DerivedCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let filled = self.slot.lock().map(|s| s.is_some()).unwrap_or(false);
        write!(f, "DerivedCache {{ filled: {filled} }}")
    }
}

impl<T> DerivedCache<T> {
    /// The value derived from `from`: the cached one if it was derived from these very tensors
    /// (same storage, same layout, same dtype), else `derive(from)`, cached.
    pub(crate) fn get(&self, from: &[FlexTensor], derive: impl FnOnce(&[FlexTensor]) -> T) -> Arc<T> {
        let same = |a: &FlexTensor, b: &FlexTensor| Arc::ptr_eq(&a.data_arc(), &b.data_arc()) && a.layout() == b.layout() && a.dtype() == b.dtype();
        // a poisoned lock only means a panic elsewhere while it was held: the slot is still valid
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, value)) = slot.as_ref().filter(|(ts, _)| ts.len() == from.len() && ts.iter().zip(from).all(|(a, b)| same(a, b))) {
            return value.clone();
        }
        let value = Arc::new(derive(from));
        #[cfg(test)]
        self.builds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *slot = Some((from.to_vec(), value.clone()));
        value
    }
}
