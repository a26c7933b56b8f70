//! Suspending a module that keeps exhausting its budget.
//!
//! Per-owner slots stop a spinning policy from taking other owners' *slots*, but on a small
//! machine the CPU it burns still costs everyone: with an owner spinning to `max_fuel` on
//! every call, another owner's grant p99 went from 2.4 ms to 17-20 ms on two cores, and two
//! plain `SCHED_IDLE` busy loops outside the server did nearly the same (3.0 to 11 ms), so
//! lowering the spinning thread's priority cannot fix it. What helps is not running it: after
//! [`RuntimeConfig::suspend_after`] evaluations in a row of one owner's module end by running
//! out of fuel or time, that module's evaluations are refused without running for
//! [`RuntimeConfig::suspension`] (each denied, so access still fails closed). The next
//! evaluation after the pause runs normally; if it too runs out, the module is suspended
//! again at once for twice as long (up to 16 times the pause), so a module that spins on
//! every call costs one evaluation per pause, fewer and fewer. A success clears it all.
//!
//! [`RuntimeConfig::suspend_after`]: super::RuntimeConfig::suspend_after
//! [`RuntimeConfig::suspension`]: super::RuntimeConfig::suspension

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::types::Failure;

#[derive(Default)]
pub struct Suspensions {
    modules: Mutex<HashMap<(String, String), State>>,
}

#[derive(Default)]
struct State {
    exhausted_in_a_row: u32,
    until: Option<Instant>,
    /// Suspensions so far without a success in between.
    strikes: u32,
}

impl Suspensions {
    /// The failure to answer with instead of running, while `owner`'s module is suspended.
    pub fn check(&self, owner: &str, digest: &str) -> Option<Failure> {
        let modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if modules.is_empty() {
            return None; // the usual case: no allocation for the key
        }
        let until = modules.get(&(owner.to_owned(), digest.to_owned()))?.until?;
        let left = until.checked_duration_since(Instant::now())?;
        Some(Failure::Suspended {
            seconds: left.as_secs().max(1),
        })
    }

    /// Count an evaluation's end. Returns true when this one suspended the module.
    pub fn record(
        &self,
        owner: &str,
        digest: &str,
        failure: Option<&Failure>,
        after: u32,
        pause: Duration,
    ) -> bool {
        let exhausted = matches!(
            failure,
            Some(Failure::OutOfFuel { .. } | Failure::Deadline { .. })
        );
        let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if !exhausted && modules.is_empty() {
            return false; // the usual case
        }
        let key = (owner.to_owned(), digest.to_owned());
        if !exhausted {
            // A success clears the record; another failure only ends the run.
            if failure.is_none() {
                modules.remove(&key);
            } else if let Some(state) = modules.get_mut(&key) {
                state.exhausted_in_a_row = 0;
            }
            return false;
        }
        if modules.len() > 4096 {
            // Forget suspensions that are over, so the map stays small.
            let now = Instant::now();
            modules.retain(|_, s| s.until.is_some_and(|u| u > now));
        }
        let state = modules.entry(key).or_default();
        state.exhausted_in_a_row += 1;
        if after > 0 && (state.exhausted_in_a_row >= after || state.strikes > 0) {
            state.exhausted_in_a_row = 0;
            state.strikes += 1;
            state.until = Some(Instant::now() + pause * 2u32.pow((state.strikes - 1).min(4)));
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FUEL: Failure = Failure::OutOfFuel { fuel: 1 };

    #[test]
    fn three_exhaustions_in_a_row_suspend_only_that_owners_module() {
        let s = Suspensions::default();
        let pause = Duration::from_secs(30);
        assert!(!s.record("mallory", "d1", Some(&FUEL), 3, pause));
        assert!(!s.record("mallory", "d1", Some(&FUEL), 3, pause));
        assert!(s.check("mallory", "d1").is_none());
        assert!(s.record("mallory", "d1", Some(&FUEL), 3, pause));
        assert!(matches!(
            s.check("mallory", "d1"),
            Some(Failure::Suspended { seconds: 29 | 30 })
        ));
        // Another owner using the same bytes, and the owner's other modules, still run.
        assert!(s.check("alice", "d1").is_none());
        assert!(s.check("mallory", "d2").is_none());
    }

    #[test]
    fn a_success_or_another_failure_breaks_the_run() {
        let s = Suspensions::default();
        let pause = Duration::from_secs(30);
        let trap = Failure::Trap {
            message: "x".into(),
        };
        s.record("o", "d", Some(&FUEL), 3, pause);
        s.record("o", "d", Some(&FUEL), 3, pause);
        s.record("o", "d", None, 3, pause);
        s.record("o", "d", Some(&FUEL), 3, pause);
        s.record("o", "d", Some(&trap), 3, pause);
        assert!(!s.record("o", "d", Some(&FUEL), 3, pause));
        assert!(s.check("o", "d").is_none());
    }

    #[test]
    fn a_repeat_offender_is_suspended_at_once_for_longer() {
        let s = Suspensions::default();
        let pause = Duration::from_millis(20);
        for _ in 0..3 {
            s.record("o", "d", Some(&FUEL), 3, pause);
        }
        assert!(s.check("o", "d").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(s.check("o", "d").is_none(), "the pause ended");
        // One more exhaustion: suspended again, now for 40 ms.
        assert!(s.record("o", "d", Some(&FUEL), 3, pause));
        std::thread::sleep(Duration::from_millis(25));
        assert!(s.check("o", "d").is_some(), "the second pause is longer");
        // A success forgives.
        s.record("o", "d", None, 3, pause);
        assert!(s.check("o", "d").is_none());
        assert!(!s.record("o", "d", Some(&FUEL), 3, pause));
    }

    #[test]
    fn the_pause_ends_and_zero_disables() {
        let s = Suspensions::default();
        assert!(s.record("o", "d", Some(&FUEL), 1, Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert!(s.check("o", "d").is_none());
        for _ in 0..10 {
            assert!(!s.record("o", "e", Some(&FUEL), 0, Duration::from_secs(1)));
        }
        assert!(s.check("o", "e").is_none());
    }
}
