//! The span clock: nanoseconds since the Unix epoch, read twice per span.
//!
//! Where the CPU has an invariant time-stamp counter that the kernel keeps
//! in step across cores (`minstant` checks both), a reading is one `rdtsc`
//! and a fixed-point multiply. The counter's rate is not known up front: it
//! is measured against `minstant`'s calibrated clock, first over
//! [`FIRST_WINDOW`] cycles from the first reading (a few milliseconds: good
//! to about ten parts per million), then again over [`FINAL_WINDOW`] (about
//! a second: well under one part per million), continuing from where the
//! first line had got to, so that the clock never steps back. Until the
//! first window has passed each reading goes through `minstant` itself
//! (correct, only slower: a float conversion and a lazily made anchor,
//! about 9 ns more per reading on the development VM). Without such a
//! counter `minstant` reads the OS clock.

use std::sync::OnceLock;

/// Nanoseconds since the Unix epoch, now.
///
/// ```
/// let a = tracer_core::now_unix_nanos();
/// let b = tracer_core::now_unix_nanos();
/// assert!(b >= a && a > 1_600_000_000_000_000_000);
/// ```
#[inline]
pub fn now_unix_nanos() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(cal) = tsc::FINAL.get() {
            return cal.nanos(tsc::read());
        }
        if let Some(cal) = tsc::FIRST_CAL.get() {
            let cycles = tsc::read();
            if !cal.window_passed(cycles) {
                return cal.nanos(cycles);
            }
        }
    }
    slow_now()
}

/// A reading before the final calibration: through the first one once it
/// is made, else through `minstant`; either calibrates when its window has
/// passed.
#[inline(never)]
fn slow_now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    if minstant::is_tsc_available() {
        return tsc::read_and_calibrate();
    }
    minstant_now()
}

fn minstant_now() -> u64 {
    static ANCHOR: OnceLock<minstant::Anchor> = OnceLock::new();
    minstant::Instant::now().as_unix_nanos(ANCHOR.get_or_init(minstant::Anchor::new))
}

/// Counter cycles over which the rate is first measured: 2^24, 5–8 ms at
/// 2–3 GHz. Each `minstant` reading is bracketed by two counter reads at
/// most [`tsc::MAX_BRACKET_CYCLES`] apart, so the rate is good to about ten
/// parts per million.
pub(crate) const FIRST_WINDOW: u64 = 1 << 24;

/// Counter cycles over which the rate is measured again: 2^31, about a
/// second; good to a few parts per billion.
pub(crate) const FINAL_WINDOW: u64 = 1 << 31;

#[cfg(target_arch = "x86_64")]
mod tsc {
    use super::{minstant_now, FINAL_WINDOW, FIRST_WINDOW};
    use std::sync::OnceLock;

    /// Counter reads around a `minstant` reading further apart than this
    /// were interrupted: the pair is taken again.
    pub(super) const MAX_BRACKET_CYCLES: u64 = 2_000;

    /// The conversion measured over the first window.
    pub(super) static FIRST_CAL: OnceLock<Calibration> = OnceLock::new();
    /// The conversion measured over the final window: the fast path.
    pub(super) static FINAL: OnceLock<Calibration> = OnceLock::new();
    /// The first (counter, nanoseconds) pair of the process.
    static FIRST: OnceLock<Pair> = OnceLock::new();

    #[derive(Clone, Copy, Debug)]
    struct Pair {
        cycles: u64,
        nanos: u64,
    }

    #[derive(Debug)]
    pub(super) struct Calibration {
        cycles0: u64,
        nanos0: u64,
        /// Nanoseconds per cycle, 32.32 fixed point.
        per_cycle: u64,
        /// The counter at the process's first reading (the final window
        /// is measured from it).
        first_cycles: u64,
    }

    impl Calibration {
        /// Whether the final window has passed, so that this (first)
        /// calibration should be replaced.
        #[inline]
        pub(super) fn window_passed(&self, cycles: u64) -> bool {
            cycles.wrapping_sub(self.first_cycles) >= FINAL_WINDOW
        }

        #[inline]
        pub(super) fn nanos(&self, cycles: u64) -> u64 {
            // Signed: a thread may read the counter just before another
            // measured the anchor and convert just after.
            let delta = cycles.wrapping_sub(self.cycles0) as i64;
            let offset = (i128::from(delta) * i128::from(self.per_cycle)) >> 32;
            (i128::from(self.nanos0) + offset) as u64
        }
    }

    #[inline]
    pub(super) fn read() -> u64 {
        // SAFETY: `rdtsc` has no preconditions; `minstant` has checked that
        // the counter is invariant and synchronised across cores.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }

    /// A `minstant` reading with the counter value it corresponds to.
    fn pair() -> Pair {
        let mut best = None;
        for _ in 0..4 {
            let before = read();
            let nanos = minstant_now();
            let after = read();
            let spread = after.wrapping_sub(before);
            let p = Pair {
                cycles: before.wrapping_add(spread / 2),
                nanos,
            };
            if spread <= MAX_BRACKET_CYCLES {
                return p;
            }
            best.get_or_insert(p);
        }
        best.expect("four tries")
    }

    /// Nanoseconds per cycle in 32.32 fixed point, from two pairs.
    fn per_cycle(from: Pair, to: Pair) -> u64 {
        let cycles = to.cycles.wrapping_sub(from.cycles).max(1);
        let nanos = to.nanos.saturating_sub(from.nanos);
        ((u128::from(nanos) << 32) / u128::from(cycles)) as u64
    }

    pub(super) fn read_and_calibrate() -> u64 {
        match FIRST_CAL.get() {
            Some(first_cal) => {
                let cycles = read();
                let nanos = first_cal.nanos(cycles);
                if first_cal.window_passed(cycles) {
                    let first = *FIRST.get().expect("set before the first calibration");
                    // The rate from minstant over the whole window; the line
                    // starts where the first one is now, so time goes on
                    // from here without a step.
                    let per_cycle = per_cycle(first, pair());
                    let _ = FINAL.set(Calibration {
                        cycles0: cycles,
                        nanos0: nanos,
                        per_cycle,
                        first_cycles: first.cycles,
                    });
                }
                nanos
            }
            None => {
                let first = *FIRST.get_or_init(pair);
                if read().wrapping_sub(first.cycles) < FIRST_WINDOW {
                    return minstant_now();
                }
                let now = pair();
                if now.nanos > first.nanos {
                    let _ = FIRST_CAL.set(Calibration {
                        cycles0: now.cycles,
                        nanos0: now.nanos,
                        per_cycle: per_cycle(first, now),
                        first_cycles: first.cycles,
                    });
                }
                now.nanos
            }
        }
    }

    #[cfg(test)]
    pub(super) fn calibrated() -> bool {
        FINAL.get().is_some()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn fixed_point_conversion() {
            let c = Calibration {
                cycles0: 1_000,
                nanos0: 5_000_000,
                // 0.5 ns per cycle (a 2 GHz counter).
                per_cycle: 1 << 31,
                first_cycles: 0,
            };
            assert!(!c.window_passed(FINAL_WINDOW - 1));
            assert!(c.window_passed(FINAL_WINDOW));
            assert_eq!(c.nanos(1_000), 5_000_000);
            assert_eq!(c.nanos(3_000), 5_001_000);
            assert_eq!(c.nanos(0), 4_999_500, "a read just before the anchor");
            // An hour at 2 GHz stays exact.
            assert_eq!(
                c.nanos(1_000 + 7_200_000_000_000),
                5_000_000 + 3_600_000_000_000
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn system_nanos() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos() as u64
    }

    /// Before and after the fast path takes over, the clock agrees with
    /// the system clock, never goes back on a thread, and times a sleep.
    #[test]
    fn agrees_with_the_system_clock_before_and_after_calibration() {
        let check = |phase: &str| {
            let ours = now_unix_nanos();
            let sys = system_nanos();
            assert!(
                ours.abs_diff(sys) < 5_000_000,
                "{phase}: {ours} vs system {sys}"
            );
            let mut last = now_unix_nanos();
            for _ in 0..100_000 {
                let t = now_unix_nanos();
                assert!(t >= last, "{phase}: went back from {last} to {t}");
                last = t;
            }
            let a = now_unix_nanos();
            std::thread::sleep(Duration::from_millis(20));
            let slept = now_unix_nanos() - a;
            assert!(
                (20_000_000..200_000_000).contains(&slept),
                "{phase}: a 20 ms sleep took {slept} ns"
            );
        };
        check("first readings");
        #[cfg(target_arch = "x86_64")]
        if minstant::is_tsc_available() {
            // Spend both calibration windows (2^31 cycles is under 2.2 s
            // for any counter of 1 GHz or more), reading on the way.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let mut last = now_unix_nanos();
            while !tsc::calibrated() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
                let t = now_unix_nanos();
                assert!(t >= last, "went back from {last} to {t} while calibrating");
                last = t;
            }
            assert!(tsc::calibrated(), "calibrated within 10 s");
            check("calibrated");
            // The fast path and minstant agree to well under a millisecond.
            let fast = now_unix_nanos();
            let slow = minstant_now();
            assert!(
                fast.abs_diff(slow) < 200_000,
                "fast {fast} vs minstant {slow}"
            );
        }
    }
}
