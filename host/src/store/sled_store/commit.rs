//! Group commit: many concurrent writers share one fsync.
//!
//! Every acknowledged write must be durable, so each write waits for a flush of sled's log.
//! When every writer ran its own `Db::flush`, concurrent flushes queued behind each other on
//! sled's I/O buffers and the server spent its time in futex waits and context switches (the
//! load harness's UMA grant: one thread per flush, three flushes per grant). Here writers only
//! bump a counter and wait; one flusher thread runs `Db::flush` for everything written up to
//! the moment it starts, and wakes all writers that flush covered.
//!
//! Why this is correct: a writer's `tree.insert` completes before it takes its ticket
//! (`requested += 1`); the flusher reads `requested` before it calls `Db::flush`, and sled's
//! flush makes durable every write that completed before the call. So a flush whose round is
//! at least the writer's ticket covers the writer's data.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::error::{Error, Result};

/// What the flusher has done so far (a round is identified by the highest ticket it covered).
#[derive(Clone, Copy, Default)]
struct Flushed {
    /// Every ticket up to here is durable (or failed, see `failed_upto`).
    done: u64,
    /// The highest ticket covered by a flush that failed.
    failed_upto: u64,
}

#[derive(Default)]
struct Requests {
    /// The highest ticket handed out.
    requested: u64,
    stop: bool,
}

struct Shared {
    requests: Mutex<Requests>,
    wake: Condvar,
}

pub struct GroupCommit {
    shared: Arc<Shared>,
    rounds: Arc<std::sync::atomic::AtomicU64>,
    flushed: watch::Receiver<Flushed>,
    flusher: Option<JoinHandle<()>>,
}

impl GroupCommit {
    pub fn start(db: sled::Db) -> std::io::Result<GroupCommit> {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Requests::default()),
            wake: Condvar::new(),
        });
        let (tx, rx) = watch::channel(Flushed::default());
        let s = shared.clone();
        let rounds = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let r = rounds.clone();
        let flusher = std::thread::Builder::new()
            .name("uma-store-flush".into())
            .spawn(move || flusher(db, &s, &tx, &r))?;
        Ok(GroupCommit {
            shared,
            rounds,
            flushed: rx,
            flusher: Some(flusher),
        })
    }

    /// Returns once everything written before the call is durable.
    pub async fn flush(&self) -> Result<()> {
        let ticket = {
            let mut r = self
                .shared
                .requests
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            r.requested += 1;
            r.requested
        };
        self.shared.wake.notify_one();
        let mut rx = self.flushed.clone();
        let state = *rx
            .wait_for(|f| f.done >= ticket)
            .await
            .map_err(|_| Error::internal("the store's flusher stopped"))?;
        if state.failed_upto >= ticket {
            return Err(Error::internal("flushing the store to disk failed"));
        }
        Ok(())
    }
}

fn flusher(
    db: sled::Db,
    shared: &Shared,
    tx: &watch::Sender<Flushed>,
    rounds: &std::sync::atomic::AtomicU64,
) {
    let mut state = Flushed::default();
    loop {
        let target = {
            let mut r = shared.requests.lock().unwrap_or_else(|p| p.into_inner());
            while r.requested == state.done && !r.stop {
                r = shared.wake.wait(r).unwrap_or_else(|p| p.into_inner());
            }
            if r.stop && r.requested == state.done {
                return;
            }
            r.requested
        };
        if let Err(e) = db.flush() {
            tracing::error!(error = %e, "flushing the store failed");
            state.failed_upto = target;
        }
        state.done = target;
        rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tx.send_replace(state);
    }
}

impl Drop for GroupCommit {
    /// Flushes what is pending and stops the thread, so the directory can be reopened at once.
    fn drop(&mut self) {
        let requested = {
            let mut r = self
                .shared
                .requests
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            r.stop = true;
            r.requested
        };
        tracing::info!(
            flushes = requested,
            rounds = self.rounds.load(std::sync::atomic::Ordering::Relaxed),
            "store closed"
        );
        self.shared.wake.notify_one();
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_are_durable_after_flush_returns() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::Config::new()
                .path(dir.path())
                .flush_every_ms(None)
                .open()
                .unwrap();
            let gc = Arc::new(GroupCommit::start(db.clone()).unwrap());
            let tasks: Vec<_> = (0..64u32)
                .map(|i| {
                    let db = db.clone();
                    let gc = gc.clone();
                    tokio::spawn(async move {
                        db.insert(i.to_be_bytes(), &b"v"[..]).unwrap();
                        gc.flush().await.unwrap();
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            // Every write was acknowledged; leak the handles as a crash would, without sled's
            // own flush on drop.
            std::mem::forget(db);
            match Arc::try_unwrap(gc) {
                Ok(gc) => std::mem::forget(gc),
                Err(_) => panic!("flush tasks still hold the group commit"),
            }
        }
        // The leaked Db still holds the directory's lock: reopen a copy of what reached the
        // files. Without the flush, sled (no background flusher) would have kept the writes in
        // its buffers and the copy would miss them.
        let copy = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
            }
        }
        let db = sled::open(copy.path()).unwrap();
        assert_eq!(db.len(), 64);
    }
}
