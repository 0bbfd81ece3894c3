//! Liveness for `/healthz`: each processing loop beats once per iteration; the process is
//! unhealthy when a registered loop has not beaten within the timeout (a wedged loop, which
//! a restart cures) or a driver stopped for good (fenced by another instance with its id).
//! Before any loop runs (connecting, checking topics) the process is alive.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

/// The loops of this process.
#[derive(Debug)]
pub struct Liveness {
    loops: Mutex<BTreeMap<u64, (String, Arc<AtomicI64>)>>,
    next: AtomicI64,
    failed: Mutex<Option<String>>,
    timeout_ms: AtomicI64,
}

/// The process's liveness.
pub static LIVENESS: LazyLock<Liveness> = LazyLock::new(|| Liveness::new(120_000));

/// A registered loop's heartbeat; dropping it deregisters the loop.
#[derive(Debug)]
pub struct Beat<'a> {
    owner: &'a Liveness,
    id: u64,
    at: Arc<AtomicI64>,
}

impl Beat<'_> {
    /// The loop is at work at `now_ms` (wall clock).
    pub fn beat(&self, now_ms: i64) {
        self.at.store(now_ms, Ordering::Relaxed);
    }
}

impl Drop for Beat<'_> {
    fn drop(&mut self) {
        if let Ok(mut l) = self.owner.loops.lock() {
            l.remove(&self.id);
        }
    }
}

impl Liveness {
    /// No loop, healthy; a loop silent for `timeout_ms` makes it unhealthy.
    pub fn new(timeout_ms: i64) -> Liveness {
        Liveness {
            loops: Mutex::new(BTreeMap::new()),
            next: AtomicI64::new(0),
            failed: Mutex::new(None),
            timeout_ms: AtomicI64::new(timeout_ms),
        }
    }

    /// Sets how long a loop may go without beating (`kafka.liveness_timeout_ms`).
    pub fn set_timeout(&self, timeout_ms: i64) {
        self.timeout_ms.store(timeout_ms, Ordering::Relaxed);
    }

    /// Registers a loop, beating now.
    pub fn register(&self, name: &str, now_ms: i64) -> Beat<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) as u64;
        let at = Arc::new(AtomicI64::new(now_ms));
        if let Ok(mut l) = self.loops.lock() {
            l.insert(id, (name.to_owned(), at.clone()));
        }
        Beat {
            owner: self,
            id,
            at,
        }
    }

    /// The process will not recover: `/healthz` fails from now on.
    pub fn fail(&self, why: String) {
        if let Ok(mut f) = self.failed.lock() {
            f.get_or_insert(why);
        }
    }

    /// Healthy, or why not.
    pub fn check(&self, now_ms: i64) -> Result<(), String> {
        if let Some(why) = self.failed.lock().ok().and_then(|f| f.clone()) {
            return Err(why);
        }
        let timeout = self.timeout_ms.load(Ordering::Relaxed);
        let loops = self
            .loops
            .lock()
            .map_err(|_| "liveness poisoned".to_owned())?;
        for (name, at) in loops.values() {
            let silent = now_ms - at.load(Ordering::Relaxed);
            if silent > timeout {
                return Err(format!(
                    "the {name} loop has not polled for {} s (kafka.liveness_timeout_ms = {} s)",
                    silent / 1000,
                    timeout / 1000
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_loop_or_a_failure_is_unhealthy_and_a_finished_loop_is_forgotten() {
        let l = Liveness::new(1_000);
        assert!(l.check(0).is_ok(), "no loop yet: alive");
        let planner = l.register("planner", 0);
        let profiler = l.register("profiler", 0);
        planner.beat(5_000);
        profiler.beat(3_000);
        assert!(l.check(5_500).is_err_and(|e| e.contains("profiler")));
        profiler.beat(5_400);
        assert!(l.check(5_500).is_ok());
        drop(planner);
        assert!(
            l.check(6_000).is_ok(),
            "only the profiler left, beaten 0.6 s ago"
        );
        l.fail("fenced".into());
        assert_eq!(l.check(6_000), Err("fenced".into()));
    }
}
