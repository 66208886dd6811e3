//! A dedicated thread that owns this process's index connection, so SQLite work never runs on the async
//! worker threads. Async code sends it closures and awaits their results.

use super::Index;
use std::sync::mpsc;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&mut Index) + Send>;

/// A handle to the index thread. Cloning shares the same thread.
#[derive(Clone)]
pub struct IndexWorker {
    tx: mpsc::Sender<Job>,
}

impl IndexWorker {
    /// Moves `index` onto its own thread.
    pub fn spawn(mut index: Index) -> IndexWorker {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sortie-index".into())
            .spawn(move || {
                for job in rx {
                    job(&mut index);
                }
            })
            .expect("spawn index thread");
        IndexWorker { tx }
    }

    /// Runs `f` on the index thread and waits (asynchronously) for its result.
    pub async fn call<R, F>(&self, f: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Index) -> R + Send + 'static,
    {
        let (rtx, rrx) = oneshot::channel();
        self.tx
            .send(Box::new(move |idx| {
                let _ = rtx.send(f(idx));
            }))
            .ok()?;
        rrx.await.ok()
    }

    /// Runs `f` on the index thread without waiting for it.
    pub fn submit<F>(&self, f: F)
    where
        F: FnOnce(&mut Index) + Send + 'static,
    {
        let _ = self.tx.send(Box::new(f));
    }
}
