//! Timers: things due at an instant, kept in a binary heap so that finding
//! the next deadline and taking what is due cost O(log n), however many are
//! pending. Cancelling is O(1): the entry leaves the live map and its heap
//! slot is skipped when it surfaces (the heap is rebuilt when such stale
//! slots outnumber the live ones, so it stays within twice the cap).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::HashMap;
use std::time::Instant;

/// Identifies a scheduled timer, for `Timers::cancel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

/// The timer was not scheduled: `cap` timers are pending already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimersFull {
    /// The cap that was reached.
    pub cap: usize,
}

impl std::fmt::Display for TimersFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} timers are pending already", self.cap)
    }
}

impl std::error::Error for TimersFull {}

/// Values due at instants, bounded in number.
pub(crate) struct Timers<T> {
    heap: BinaryHeap<Reverse<(Instant, TimerId)>>,
    live: HashMap<TimerId, T>,
    next: u64,
    cap: usize,
    /// Timers refused because `cap` were pending.
    pub(crate) refused: u64,
}

impl<T> Timers<T> {
    pub(crate) fn new(cap: usize) -> Self {
        Timers {
            heap: BinaryHeap::new(),
            live: HashMap::new(),
            next: 0,
            cap: cap.max(1),
            refused: 0,
        }
    }

    /// Schedules `value` for `at`; refused (and counted) past the cap.
    pub(crate) fn schedule(&mut self, at: Instant, value: T) -> Result<TimerId, TimersFull> {
        if self.live.len() >= self.cap {
            self.refused += 1;
            return Err(TimersFull { cap: self.cap });
        }
        self.next += 1;
        let id = TimerId(self.next);
        self.live.insert(id, value);
        self.heap.push(Reverse((at, id)));
        if self.heap.len() > 2 * self.live.len() + 64 {
            let live = &self.live;
            self.heap.retain(|Reverse((_, id))| live.contains_key(id));
        }
        Ok(id)
    }

    /// Takes a pending timer out; `None` when it fired or was cancelled.
    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<T> {
        self.live.remove(&id)
    }

    /// Drops the cancelled entries at the top of the heap.
    fn skip_stale(&mut self) {
        while let Some(Reverse((_, id))) = self.heap.peek() {
            if self.live.contains_key(id) {
                return;
            }
            self.heap.pop();
        }
    }

    /// When the earliest pending timer is due.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.skip_stale();
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The earliest timer due at or before `now`, taken out.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        loop {
            let Reverse((at, id)) = *self.heap.peek()?;
            if at > now && self.live.contains_key(&id) {
                return None;
            }
            self.heap.pop();
            if let Some(v) = self.live.remove(&id) {
                return Some(v);
            }
        }
    }

    /// Timers pending.
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_timers_come_out_in_deadline_order() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut t = Timers::new(10);
        t.schedule(t0 + ms(30), "c").unwrap();
        t.schedule(t0 + ms(10), "a").unwrap();
        t.schedule(t0 + ms(20), "b").unwrap();
        assert_eq!(t.next_deadline(), Some(t0 + ms(10)));
        assert_eq!(t.pop_due(t0), None, "nothing is due yet");
        assert_eq!(t.pop_due(t0 + ms(25)), Some("a"));
        assert_eq!(t.pop_due(t0 + ms(25)), Some("b"));
        assert_eq!(t.pop_due(t0 + ms(25)), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn cancelled_timers_never_fire_and_leave_no_deadline() {
        let t0 = Instant::now();
        let mut t = Timers::new(10);
        let a = t.schedule(t0, 1).unwrap();
        let b = t.schedule(t0 + Duration::from_secs(1), 2).unwrap();
        assert_eq!(t.cancel(a), Some(1));
        assert_eq!(t.cancel(a), None, "cancelled once");
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.cancel(b), Some(2));
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.pop_due(t0 + Duration::from_secs(5)), None);
    }

    #[test]
    fn the_cap_refuses_and_counts() {
        let t0 = Instant::now();
        let mut t = Timers::new(2);
        t.schedule(t0, ()).unwrap();
        let b = t.schedule(t0, ()).unwrap();
        assert_eq!(t.schedule(t0, ()), Err(TimersFull { cap: 2 }));
        assert_eq!(t.refused, 1);
        t.cancel(b);
        assert!(
            t.schedule(t0, ()).is_ok(),
            "a cancelled timer frees its place"
        );
    }

    #[test]
    fn cancelled_entries_do_not_pile_up_in_the_heap() {
        let t0 = Instant::now();
        let mut t = Timers::new(1_000);
        for i in 0..100_000u32 {
            let id = t.schedule(t0 + Duration::from_secs(60), i).unwrap();
            t.cancel(id);
        }
        assert!(
            t.heap.len() <= 2 * t.len() + 65,
            "heap holds {}",
            t.heap.len()
        );
    }
}
