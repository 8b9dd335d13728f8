//! The span clock: nanoseconds since the Unix epoch, read twice per span.
//!
//! Where the CPU has an invariant time-stamp counter that the kernel keeps
//! in step across cores (`minstant` checks both), a reading is one `rdtsc`
//! and a fixed-point multiply. The counter's rate is not known up front: it
//! is measured against `minstant`'s calibrated clock over the first
//! [`WINDOW_CYCLES`] of the process (about 0.1 s), and until then each
//! reading goes through `minstant` itself (correct, only slower: a float
//! conversion and a lazily made anchor, about 9 ns more per reading on the
//! development VM). Without such a counter `minstant` reads the OS clock.

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
    if let Some(cal) = tsc::CALIBRATED.get() {
        return cal.nanos(tsc::read());
    }
    slow_now()
}

/// A reading through `minstant`, which also calibrates the fast path once
/// enough time has passed.
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

/// Counter cycles between the two readings the rate is measured from:
/// 2^28, about 0.1 s at 2–3 GHz. Each reading is bracketed by two counter
/// reads a few hundred cycles apart at most, so the rate is good to a few
/// parts per million.
pub(crate) const WINDOW_CYCLES: u64 = 1 << 28;

#[cfg(target_arch = "x86_64")]
mod tsc {
    use super::{minstant_now, WINDOW_CYCLES};
    use std::sync::OnceLock;

    /// Counter reads around a `minstant` reading further apart than this
    /// were interrupted: the pair is taken again.
    const MAX_BRACKET_CYCLES: u64 = 2_000;

    /// The counter-to-nanoseconds conversion, once measured.
    pub(super) static CALIBRATED: OnceLock<Calibration> = OnceLock::new();
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
    }

    impl Calibration {
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

    pub(super) fn read_and_calibrate() -> u64 {
        let now = pair();
        let first = *FIRST.get_or_init(|| now);
        let cycles = now.cycles.wrapping_sub(first.cycles);
        if cycles >= WINDOW_CYCLES && now.nanos > first.nanos {
            let nanos = now.nanos - first.nanos;
            let per_cycle = ((u128::from(nanos) << 32) / u128::from(cycles)) as u64;
            let _ = CALIBRATED.set(Calibration {
                cycles0: now.cycles,
                nanos0: now.nanos,
                per_cycle,
            });
        }
        now.nanos
    }

    #[cfg(test)]
    pub(super) fn calibrated() -> bool {
        CALIBRATED.get().is_some()
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
            };
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
            // Spend the calibration window (2^28 cycles is under 0.3 s
            // for any counter of 1 GHz or more), then read once more.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !tsc::calibrated() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
                now_unix_nanos();
            }
            assert!(tsc::calibrated(), "calibrated within 5 s");
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
