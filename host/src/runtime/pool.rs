//! The evaluation threads: every call into a guest runs on one of them, never on the async
//! workers, and there are never more of them than instances the engine's pool can hold.
//!
//! tokio's blocking pool did this job before, under a semaphore. It bounded the evaluations
//! running at once but not the threads: it starts a thread whenever none is idle at that
//! instant, so under the grant load it kept 8 threads for 2 evaluations at a time, and woke
//! them in turn, each with its own allocator caches warm. The calls that validate a
//! configuration or run a claims plugin also went there without the semaphore, so they could
//! find every instance slot taken and fail. Here the thread count is the bound, every sandboxed
//! call goes through it, and the most recently idle thread takes the next job (its stack and
//! caches are the warmest), so a light load keeps running on one or two threads.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// A job runs the caller's closure and returns how to hand its result back, so the thread can
/// count itself free before the caller hears (see `State::busy`).
type Job = Box<dyn FnOnce() -> Deliver + Send>;
type Deliver = Box<dyn FnOnce() + Send>;

/// A job that did not come back: it panicked, or no thread could be started to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost(pub String);

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "evaluation thread: {}", self.0)
    }
}

impl std::error::Error for Lost {}

/// Up to `max` threads, started on demand and stopped after `keep_alive` without work.
pub struct Threads {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    max: usize,
    keep_alive: Duration,
    stack_size: usize,
    name: String,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Parked threads, the most recently idle last: it is woken first.
    idle: Vec<(u64, Thread)>,
    /// Threads alive: busy, idle, or on their way back to the queue.
    threads: usize,
    /// Threads running a job. A thread stops counting as busy before its caller hears the
    /// result, so a caller that submits its next job at once finds the thread on its way
    /// back and does not start another (tokio's blocking pool did, and grew to 8 threads).
    busy: usize,
    /// The most ever counted alive at once, a thread whose start failed included (reported
    /// by tests and by `Runtime::evaluation_threads`).
    peak: usize,
    next_id: u64,
    stopping: bool,
}

impl Threads {
    /// `max` threads at most (at least one), each with `stack_size` bytes of stack (guest code
    /// runs on it: it must hold the engine's `max_wasm_stack` and the host's frames).
    pub fn new(name: &str, max: usize, stack_size: usize, keep_alive: Duration) -> Threads {
        Threads {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                max: max.max(1),
                keep_alive,
                stack_size,
                name: name.to_owned(),
            }),
        }
    }

    /// Runs `f` on one of the threads and returns its result; waits in line while all are busy.
    /// A panic in `f` is caught and returned as [`Lost`]; the thread goes on.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, Lost> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(Box::new(move || {
            // A caller that gave up (its request timed out or its client went away) hears
            // nothing: its guest code need not run.
            if tx.is_closed() {
                return Box::new(|| {});
            }
            let result = catch_unwind(AssertUnwindSafe(f));
            Box::new(move || {
                let _ = tx.send(result);
            })
        }));
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(panic)) => Err(Lost(panic_message(&*panic))),
            // Dropped unrun: see `submit`.
            Err(_) => Err(Lost("no thread could be started to run it".into())),
        }
    }

    /// Threads alive now, and the most counted alive at once so far.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.shared.lock();
        (s.threads, s.peak)
    }

    fn submit(&self, job: Job) {
        let shared = &self.shared;
        let mut s = shared.lock();
        s.queue.push_back(job);
        // Threads neither busy nor parked are on their way back to the queue (done with a job,
        // just woken or just started): they take what waits before anyone is woken.
        let returning = s.threads - s.busy - s.idle.len();
        if s.queue.len() <= returning {
            return;
        }
        if let Some((_, thread)) = s.idle.pop() {
            drop(s);
            thread.unpark();
        } else if s.threads < shared.max {
            s.threads += 1;
            s.peak = s.peak.max(s.threads);
            s.next_id += 1;
            let id = s.next_id;
            drop(s);
            let worker = shared.clone();
            let started = std::thread::Builder::new()
                .name(format!("{}-{id}", shared.name))
                .stack_size(shared.stack_size)
                .spawn(move || worker.work(id));
            if let Err(e) = started {
                tracing::error!(error = %e, "starting an evaluation thread failed");
                let mut s = shared.lock();
                s.threads -= 1;
                if s.threads == 0 {
                    // Nobody is left to run what waits: drop it (outside the lock: its
                    // captures' destructors are the callers'), so its callers get `Lost`
                    // instead of waiting forever. With threads alive, they run it.
                    let unrun = std::mem::take(&mut s.queue);
                    drop(s);
                    drop(unrun);
                }
            }
        }
        // Otherwise every thread is busy, and the first to finish takes the job.
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A job's panic is caught outside the lock, so a poisoned lock holds consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn work(&self, id: u64) {
        let mut s = self.lock();
        loop {
            if let Some(job) = s.queue.pop_front() {
                s.busy += 1;
                drop(s);
                let deliver = job();
                self.lock().busy -= 1;
                // Dropping a result nobody waits for runs its destructor here: a panic there
                // must not end the thread, which the counts above expect back.
                let _ = catch_unwind(AssertUnwindSafe(deliver));
                s = self.lock();
                continue;
            }
            if s.stopping {
                break;
            }
            s.idle.push((id, std::thread::current()));
            drop(s);
            let parked = Instant::now();
            std::thread::park_timeout(self.keep_alive);
            s = self.lock();
            // Whoever wakes a thread takes it off the idle list first; still on it means a
            // timeout or a spurious wake-up.
            if let Some(at) = s.idle.iter().position(|(i, _)| *i == id) {
                s.idle.remove(at);
                if parked.elapsed() >= self.keep_alive && s.queue.is_empty() {
                    break;
                }
            }
        }
        s.threads -= 1;
    }
}

impl Drop for Threads {
    /// Idle threads stop now; busy ones after the jobs still queued (not joined: a job runs to
    /// its end, bounded by its deadline).
    fn drop(&mut self) {
        let idle = {
            let mut s = self.shared.lock();
            s.stopping = true;
            std::mem::take(&mut s.idle)
        };
        for (_, thread) in idle {
            thread.unpark();
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a job panicked");
    format!("panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn threads(max: usize, keep_alive: Duration) -> Threads {
        Threads::new("test-eval", max, 256 << 10, keep_alive)
    }

    /// Waits up to `within` for `done`, failing with what was expected.
    async fn eventually(what: &str, within: Duration, done: impl Fn() -> bool) {
        let deadline = Instant::now() + within;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn jobs_run_off_the_caller_and_return_their_result() {
        let pool = threads(2, Duration::from_secs(5));
        let caller = std::thread::current().id();
        let (value, ran_on) = pool
            .run(move || (6 * 7, std::thread::current()))
            .await
            .unwrap();
        assert_eq!(value, 42);
        assert_ne!(ran_on.id(), caller);
        assert!(ran_on.name().unwrap().starts_with("test-eval-"));
    }

    /// The bound is on threads, not only on running jobs: 40 jobs that each wait until four
    /// run at once never get more than `max` threads, and all finish.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_more_threads_than_the_bound_and_the_rest_wait_in_line() {
        let pool = Arc::new(threads(4, Duration::from_secs(5)));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let jobs = (0..40).map(|i| {
            let (pool, running, most, barrier) =
                (pool.clone(), running.clone(), most.clone(), barrier.clone());
            async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Four at a time: each waits for three others, which needs four threads.
                    barrier.wait();
                    running.fetch_sub(1, Ordering::SeqCst);
                    i
                })
                .await
            }
        });
        let results = tokio::time::timeout(
            Duration::from_secs(20),
            futures_util::future::join_all(jobs),
        )
        .await
        .expect("fewer than four threads ran the jobs");
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(most.load(Ordering::SeqCst), 4);
        assert_eq!(pool.counts().1, 4, "peak threads");
    }

    /// With two threads idle, the one that went idle last takes every job that comes one at a
    /// time (its stack and caches are warm); a first-in-first-out pool would wake the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_most_recently_idle_thread_takes_the_next_job() {
        let pool = threads(8, Duration::from_secs(30));
        let name = || std::thread::current().name().map(str::to_owned);
        let pair = Arc::new(std::sync::Barrier::new(2));
        let (first, last) = tokio::join!(
            pool.run({
                let pair = pair.clone();
                move || {
                    pair.wait();
                    name()
                }
            }),
            pool.run(move || {
                pair.wait();
                // This one goes idle well after the other.
                std::thread::sleep(Duration::from_millis(100));
                name()
            })
        );
        let (first, last) = (first.unwrap(), last.unwrap());
        assert_ne!(first, last);
        for _ in 0..20 {
            assert_eq!(pool.run(name).await.unwrap(), last);
        }
        assert_eq!(pool.counts(), (2, 2));
    }

    /// A thread done with a job and on its way back takes the next one: no other thread is
    /// started or woken for jobs that come one after another.
    #[tokio::test]
    async fn jobs_one_after_another_run_on_one_thread() {
        let pool = threads(8, Duration::from_secs(30));
        for _ in 0..200 {
            pool.run(|| ()).await.unwrap();
        }
        assert_eq!(pool.counts(), (1, 1));
    }

    #[tokio::test]
    async fn a_job_no_thread_can_start_for_is_lost_not_left_waiting() {
        // No machine maps a stack of 1 PiB: every start fails.
        let pool = Threads::new("test-eval", 2, 1 << 50, Duration::from_secs(5));
        let lost = tokio::time::timeout(Duration::from_secs(10), pool.run(|| 1))
            .await
            .expect("the caller was left waiting");
        assert_eq!(
            lost,
            Err(Lost("no thread could be started to run it".into()))
        );
        assert_eq!(pool.counts(), (0, 1));
    }

    /// A job whose caller gave up before a thread got to it is not run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_caller_gave_up_is_skipped() {
        let pool = threads(1, Duration::from_secs(30));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (blocker, abandoned) = tokio::join!(pool.run(move || wait.recv().is_ok()), async {
            let ran = Arc::new(AtomicUsize::new(0));
            let r = ran.clone();
            let gave_up = tokio::time::timeout(
                Duration::from_millis(50),
                pool.run(move || r.fetch_add(1, Ordering::SeqCst)),
            )
            .await;
            assert!(gave_up.is_err(), "the only thread is busy");
            release.send(()).unwrap();
            ran
        });
        assert_eq!(blocker, Ok(true));
        assert_eq!(pool.run(|| 3).await, Ok(3));
        assert_eq!(abandoned.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_panicking_job_is_lost_and_the_thread_goes_on() {
        let pool = threads(1, Duration::from_secs(5));
        let lost = pool
            .run(|| -> u32 { panic!("guest glue broke") })
            .await
            .unwrap_err();
        assert_eq!(lost, Lost("panicked: guest glue broke".into()));
        assert_eq!(pool.run(|| 7).await, Ok(7));
        assert_eq!(pool.counts().0, 1);
    }

    #[tokio::test]
    async fn idle_threads_stop_after_the_keep_alive_and_start_again_on_demand() {
        let pool = threads(2, Duration::from_millis(300));
        assert_eq!(pool.run(|| 1).await, Ok(1));
        assert_eq!(pool.counts().1, 1);
        eventually("the idle thread stops", Duration::from_secs(10), || {
            pool.counts().0 == 0
        })
        .await;
        assert_eq!(pool.run(|| 2).await, Ok(2));
        assert_eq!(pool.counts().0, 1);
    }

    #[tokio::test]
    async fn dropping_the_pool_stops_its_idle_threads() {
        let pool = threads(3, Duration::from_secs(60));
        assert_eq!(pool.run(|| 1).await, Ok(1));
        let shared = pool.shared.clone();
        drop(pool);
        eventually(
            "no idle thread outlives its pool",
            Duration::from_secs(5),
            || shared.lock().threads == 0,
        )
        .await;
    }
}
