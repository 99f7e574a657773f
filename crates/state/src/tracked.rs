//! A map and a log that remember what changed since their last [`commit`](TrackedMap::commit), with the values
//! from before, so a store that writes changes back (Redis) can find them, write them and — when the write loses
//! or the change is refused — undo them, in time that grows with the change, not with the meeting. Reads go
//! through `Deref` to the plain `BTreeMap`/`Vec`; every mutation goes through the methods here (there is no
//! `DerefMut`), so none escapes the record. Serialized as the plain collection; equality ignores the record.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::collections::btree_map::{Entry, ValuesMut};
use std::collections::BTreeMap;
use std::ops::Deref;

/// A `BTreeMap` that records, per key changed since the last commit, its value before the first change.
#[derive(Clone, Debug)]
pub struct TrackedMap<K: Ord, V> {
    map: BTreeMap<K, V>,
    /// Key → its value at the last commit (`None`: it was absent).
    undo: BTreeMap<K, Option<V>>,
}

impl<K: Ord, V> Default for TrackedMap<K, V> {
    fn default() -> Self {
        Self {
            map: BTreeMap::new(),
            undo: BTreeMap::new(),
        }
    }
}

impl<K: Ord, V: PartialEq> PartialEq for TrackedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<K: Ord, V> Deref for TrackedMap<K, V> {
    type Target = BTreeMap<K, V>;
    fn deref(&self) -> &BTreeMap<K, V> {
        &self.map
    }
}

impl<K: Ord, V> From<BTreeMap<K, V>> for TrackedMap<K, V> {
    fn from(map: BTreeMap<K, V>) -> Self {
        Self {
            map,
            undo: BTreeMap::new(),
        }
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a TrackedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::collections::btree_map::Iter<'a, K, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

impl<K: Ord + Serialize, V: Serialize> Serialize for TrackedMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for TrackedMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(d).map(Self::from)
    }
}

impl<K: Ord + Clone, V: Clone> TrackedMap<K, V> {
    fn note(&mut self, key: &K) {
        if !self.undo.contains_key(key) {
            self.undo.insert(key.clone(), self.map.get(key).cloned());
        }
    }

    fn note_found<Q: Ord + ?Sized>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
    {
        if let Some((k, _)) = self.map.get_key_value(key) {
            let k = k.clone();
            self.note(&k);
        }
    }

    fn note_all(&mut self) {
        let keys: Vec<K> = self
            .map
            .keys()
            .filter(|k| !self.undo.contains_key(*k))
            .cloned()
            .collect();
        for k in keys {
            self.note(&k);
        }
    }

    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.note_found(key);
        self.map.get_mut(key)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.note(&key);
        self.map.insert(key, value)
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.note_found(key);
        self.map.remove(key)
    }

    pub fn entry(&mut self, key: K) -> Entry<'_, K, V> {
        self.note(&key);
        self.map.entry(key)
    }

    /// Every value, mutably: every key counts as changed (O(n); for whole-meeting changes).
    pub fn values_mut(&mut self) -> ValuesMut<'_, K, V> {
        self.note_all();
        self.map.values_mut()
    }

    /// Keeps what `f` accepts (every key counts as changed: `f` may change what it keeps).
    pub fn retain(&mut self, f: impl FnMut(&K, &mut V) -> bool) {
        self.note_all();
        self.map.retain(f);
    }

    pub fn clear(&mut self) {
        self.note_all();
        self.map.clear();
    }

    /// Takes every entry out (each counts as removed).
    pub fn take(&mut self) -> BTreeMap<K, V> {
        self.note_all();
        std::mem::take(&mut self.map)
    }

    /// What changed since the last commit: each key with its value then and now (either may be absent; both may
    /// be equal when a change was undone by hand).
    pub fn changes(&self) -> impl Iterator<Item = (&K, Option<&V>, Option<&V>)> {
        self.undo
            .iter()
            .map(|(k, old)| (k, old.as_ref(), self.map.get(k)))
    }

    /// Forgets the record: what is now is the new reference.
    pub fn commit(&mut self) {
        self.undo.clear();
    }

    /// Puts back every changed key's value from the last commit.
    pub fn revert(&mut self) {
        for (k, old) in std::mem::take(&mut self.undo) {
            match old {
                Some(v) => {
                    self.map.insert(k, v);
                }
                None => {
                    self.map.remove(&k);
                }
            }
        }
    }
}

/// A `Vec` that records the first position changed since the last commit and what it held from there on.
#[derive(Clone, Debug)]
pub struct TrackedLog<T> {
    items: Vec<T>,
    /// The first changed position and the items from it at the last commit.
    undo: Option<(usize, Vec<T>)>,
}

impl<T> Default for TrackedLog<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            undo: None,
        }
    }
}

impl<T: PartialEq> PartialEq for TrackedLog<T> {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}

impl<T> Deref for TrackedLog<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.items
    }
}

impl<T> From<Vec<T>> for TrackedLog<T> {
    fn from(items: Vec<T>) -> Self {
        Self { items, undo: None }
    }
}

impl<'a, T> IntoIterator for &'a TrackedLog<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<T: Serialize> Serialize for TrackedLog<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.items.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for TrackedLog<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::deserialize(d).map(Self::from)
    }
}

impl<T: Clone> TrackedLog<T> {
    /// Positions from `at` on are about to change.
    fn note(&mut self, at: usize) {
        let at = at.min(self.items.len());
        match &mut self.undo {
            None => self.undo = Some((at, self.items[at..].to_vec())),
            Some((from, old)) if at < *from => {
                // Positions before `from` are untouched since the commit: they are the old ones.
                let mut tail = self.items[at..*from].to_vec();
                tail.append(old);
                *old = tail;
                *from = at;
            }
            Some(_) => {}
        }
    }

    pub fn push(&mut self, item: T) {
        self.note(self.items.len());
        self.items.push(item);
    }

    /// Replaces the item at `at` (nothing if there is none).
    pub fn set(&mut self, at: usize, item: T) {
        if at < self.items.len() {
            self.note(at);
            self.items[at] = item;
        }
    }

    pub fn truncate(&mut self, len: usize) {
        if len < self.items.len() {
            self.note(len);
            self.items.truncate(len);
        }
    }

    pub fn clear(&mut self) {
        self.truncate(0);
    }

    pub fn retain(&mut self, f: impl FnMut(&T) -> bool) {
        self.note(0);
        self.items.retain(f);
    }

    /// The first position changed since the last commit and the items from it then (`None`: unchanged).
    pub fn changes(&self) -> Option<(usize, &[T])> {
        self.undo
            .as_ref()
            .map(|(from, old)| (*from, old.as_slice()))
    }

    pub fn commit(&mut self) {
        self.undo = None;
    }

    pub fn revert(&mut self) {
        if let Some((from, old)) = self.undo.take() {
            self.items.truncate(from);
            self.items.extend(old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_reports_its_changes_with_the_old_values_and_reverts_them() {
        let mut m: TrackedMap<String, u32> =
            BTreeMap::from([("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]).into();
        let reference = m.clone();
        if let Some(v) = m.get_mut("a") {
            *v = 10;
        }
        if let Some(v) = m.get_mut("a") {
            *v = 11; // the first value is kept
        }
        m.remove("b");
        m.insert("d".into(), 4);
        m.remove("nothing");
        let changes: Vec<_> = m
            .changes()
            .map(|(k, o, n)| (k.as_str(), o.copied(), n.copied()))
            .collect();
        assert_eq!(
            changes,
            vec![
                ("a", Some(1), Some(11)),
                ("b", Some(2), None),
                ("d", None, Some(4)),
            ]
        );
        m.revert();
        assert_eq!(m, reference);
        assert_eq!(m.changes().count(), 0);
        m.clear();
        assert_eq!(m.changes().count(), 3);
        m.commit();
        assert!(m.is_empty());
        assert_eq!(m.changes().count(), 0);
    }

    #[test]
    fn a_log_reports_the_first_changed_position_and_reverts() {
        let mut l: TrackedLog<u32> = vec![1, 2, 3, 4].into();
        l.push(5);
        assert_eq!(l.changes(), Some((4, &[][..])));
        l.truncate(2);
        assert_eq!(l.changes(), Some((2, &[3, 4][..])));
        l.push(9);
        l.revert();
        assert_eq!(*l, vec![1, 2, 3, 4]);
        l.retain(|x| x % 2 == 0);
        assert_eq!(l.changes(), Some((0, &[1, 2, 3, 4][..])));
        l.commit();
        assert_eq!((l.as_slice(), l.changes()), (&[2, 4][..], None));
        // serialized as the plain collection
        assert_eq!(serde_json::to_string(&l).ok().as_deref(), Some("[2,4]"));
    }
}
