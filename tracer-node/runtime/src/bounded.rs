//! The one bounded map of the node: at most `cap` entries, the oldest
//! inserted goes first when a new key needs room, and every eviction is
//! counted. Removing any key is O(1): the insertion-order queue keeps a
//! sequence number per entry, and entries whose key left (or was inserted
//! again) are skipped when they reach its front.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A map of at most `cap` entries that evicts the oldest first.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    map: HashMap<K, (u64, V)>,
    order: VecDeque<(K, u64)>,
    seq: u64,
    cap: usize,
    evicted: u64,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// An empty map holding at most `cap` entries (at least one).
    pub fn new(cap: usize) -> Self {
        BoundedMap {
            map: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
            cap: cap.max(1),
            evicted: 0,
        }
    }

    /// Inserts or replaces. A new key takes the place of the oldest entry
    /// when the map is full; that entry is returned (and counted). A key
    /// already present keeps its age.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        if let Some(slot) = self.map.get_mut(&key) {
            slot.1 = value;
            return None;
        }
        let evicted = if self.map.len() >= self.cap {
            self.pop_oldest().inspect(|_| self.evicted += 1)
        } else {
            None
        };
        self.seq += 1;
        self.order.push_back((key.clone(), self.seq));
        self.map.insert(key, (self.seq, value));
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|(live, _)| live == s));
        }
        evicted
    }

    /// The value of a key, made with `make` (and inserted, evicting the
    /// oldest when full) when absent.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(&key) {
            self.insert(key.clone(), make());
        }
        &mut self.map.get_mut(&key).expect("just inserted").1
    }

    /// Takes the oldest entry out (not counted as an eviction).
    pub fn pop_oldest(&mut self) -> Option<(K, V)> {
        while let Some((k, s)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|(live, _)| *live == s) {
                let (_, v) = self.map.remove(&k).expect("checked");
                return Some((k, v));
            }
        }
        None
    }

    /// The value of a key.
    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.map.get(key).map(|(_, v)| v)
    }

    /// The value of a key, to change it.
    pub fn get_mut<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.map.get_mut(key).map(|(_, v)| v)
    }

    /// Whether the key is present.
    pub fn contains_key<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.map.contains_key(key)
    }

    /// Takes a key out.
    pub fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.map.remove(key).map(|(_, v)| v)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Entries evicted to make room, since the map was made.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, (_, v))| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_goes_first_and_is_counted() {
        let mut m = BoundedMap::new(2);
        assert_eq!(m.insert("a", 1), None);
        assert_eq!(m.insert("b", 2), None);
        assert_eq!(m.insert("a", 10), None, "a present key keeps its place");
        assert_eq!(m.insert("c", 3), Some(("a", 10)));
        assert_eq!(m.evicted(), 1);
        assert_eq!(m.get("b"), Some(&2));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn removed_keys_are_skipped_and_reinserted_keys_are_young() {
        let mut m = BoundedMap::new(2);
        m.insert(1, ());
        m.insert(2, ());
        m.remove(&1);
        m.insert(1, ());
        assert_eq!(m.insert(3, ()), Some((2, ())), "1 came back after 2");
        assert_eq!(m.pop_oldest(), Some((1, ())));
        assert_eq!(m.evicted(), 1, "pop_oldest is not an eviction");
    }

    #[test]
    fn churn_keeps_the_queue_small() {
        let mut m = BoundedMap::new(10);
        for i in 0..100_000u32 {
            m.insert(i, i);
            m.remove(&i);
        }
        assert!(m.order.len() <= 2 * m.len() + 65);
        assert!(m.is_empty());
    }
}
