//! A device's writer thread. The broker hands entries to it through a
//! bounded queue and awaits each one's acknowledgement, so sink I/O (DNS,
//! connect, write) never runs on the async runtime, and a slow or stuck
//! device holds a request up for at most its deadline
//! ([`Device::deadline`]: the socket's `write_timeout`, else 10 s).
//!
//! Order: the thread takes jobs in queue order and links each entry to the
//! one before (`seq`, `prev`) as it writes it, so the hash chain follows
//! the queue. A caller that stops waiting counts the device as failed for
//! that entry; the thread still writes it when it gets there, so a log may
//! hold more than the clients saw, never less.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::chain::ChainState;
use super::device::Device;
use super::signer::Signer;
use crate::{Error, Result};

/// Jobs queued per device before callers wait for room (within their deadline).
pub const QUEUE_CAPACITY: usize = 1024;

enum Job {
    Entry {
        entry: Map<String, Value>,
        signer: Arc<Signer>,
        ack: oneshot::Sender<Result<Option<ChainState>>>,
    },
    Checkpoint {
        reason: String,
        signer: Arc<Signer>,
        ack: oneshot::Sender<Result<ChainState>>,
    },
    Reopen {
        signer: Arc<Signer>,
    },
}

/// An enabled device and its writer thread. The thread ends once the
/// writer is dropped and the jobs already queued are done.
pub struct Writer {
    device: Arc<Device>,
    queue: mpsc::Sender<Job>,
}

impl std::ops::Deref for Writer {
    type Target = Device;

    fn deref(&self) -> &Device {
        &self.device
    }
}

impl Writer {
    /// Starts the writer thread of `device`.
    pub fn start(device: Device) -> Result<Writer> {
        let device = Arc::new(device);
        let (queue, mut jobs) = mpsc::channel::<Job>(QUEUE_CAPACITY);
        let d = device.clone();
        std::thread::Builder::new()
            .name(format!(
                "audit-{}",
                device.config.path.trim_end_matches('/')
            ))
            .spawn(move || {
                while let Some(job) = jobs.blocking_recv() {
                    match job {
                        Job::Entry { entry, signer, ack } => {
                            let _ = ack.send(d.write(entry, &signer));
                        }
                        Job::Checkpoint {
                            reason,
                            signer,
                            ack,
                        } => {
                            let _ = ack.send(d.checkpoint(&reason, &signer));
                        }
                        Job::Reopen { signer } => d.reopen(&signer),
                    }
                }
            })
            .map_err(|e| Error::Audit(format!("starting an audit writer thread: {e}")))?;
        Ok(Writer { device, queue })
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Writes one entry; returns the chain state when an interval
    /// checkpoint was written as well. Fails when the device failed or did
    /// not answer within its deadline.
    pub async fn write(
        &self,
        entry: Map<String, Value>,
        signer: &Arc<Signer>,
    ) -> Result<Option<ChainState>> {
        let (ack, done) = oneshot::channel();
        let job = Job::Entry {
            entry,
            signer: signer.clone(),
            ack,
        };
        self.run(job, done, self.device.deadline()).await
    }

    /// Writes a signed checkpoint (`start` begins a new chain). Allowed
    /// three deadlines: a connect, a write and one retry.
    pub async fn checkpoint(&self, reason: &str, signer: &Arc<Signer>) -> Result<ChainState> {
        let (ack, done) = oneshot::channel();
        let job = Job::Checkpoint {
            reason: reason.to_string(),
            signer: signer.clone(),
            ack,
        };
        self.run(job, done, self.device.deadline() * 3).await
    }

    /// Queues a `rotate` checkpoint and a reopen of the file (SIGHUP),
    /// after the entries already queued. Does not wait.
    pub fn reopen(&self, signer: &Arc<Signer>) {
        let job = Job::Reopen {
            signer: signer.clone(),
        };
        match self.queue.try_send(job) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(job)) => {
                let queue = self.queue.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => {
                        rt.spawn(async move {
                            let _ = queue.send(job).await;
                        });
                    }
                    Err(_) => {
                        let _ = queue.blocking_send(job);
                    }
                }
            }
        }
    }

    async fn run<T>(
        &self,
        job: Job,
        done: oneshot::Receiver<Result<T>>,
        deadline: Duration,
    ) -> Result<T> {
        let stopped = || Error::Stopped("the audit writer");
        let waited = tokio::time::timeout(deadline, async {
            self.queue.send(job).await.map_err(|_| stopped())?;
            done.await.map_err(|_| stopped())?
        })
        .await;
        match waited {
            Ok(r) => r,
            Err(_) => {
                let msg = format!("no answer within {} ms", deadline.as_millis());
                self.device.note_failure(&msg);
                tracing::error!(device = %self.device.config.path, "audit device did not write in time");
                Err(Error::Audit(format!(
                    "audit device {} failed: {msg}",
                    self.device.config.path
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DeviceConfig;
    use crate::verify::{verify_files, VerifyOptions};
    use base64::Engine as _;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn file_device(path: &std::path::Path) -> Device {
        let cfg = DeviceConfig {
            path: "file/".into(),
            kind: "file".into(),
            description: String::new(),
            options: BTreeMap::from([
                ("file_path".to_string(), path.display().to_string()),
                ("checkpoint_interval".to_string(), "7".to_string()),
            ]),
            local: false,
            salt: hex::encode([9u8; 32]),
        };
        Device::new(cfg, ChainState::default()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_keep_one_unbroken_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let w = Arc::new(Writer::start(file_device(&path)).unwrap());
        let (signer, _) = Signer::generate().unwrap();
        let signer = Arc::new(signer);
        w.checkpoint("start", &signer).await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let (w, signer) = (w.clone(), signer.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..40 {
                    let e = json!({"type": "request", "t": t, "i": i});
                    w.write(e.as_object().unwrap().clone(), &signer)
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        w.checkpoint("seal", &signer).await.unwrap();
        let key = base64::engine::general_purpose::STANDARD
            .decode(signer.public_key())
            .unwrap();
        let opts = VerifyOptions {
            public_key: Some(key),
            strict: true,
            open: false,
        };
        let report = verify_files(std::slice::from_ref(&path), &opts).unwrap();
        assert!(report.ok(), "{report:?}");
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        // 320 entries, start, seal and one interval checkpoint every 7.
        assert_eq!(lines, 320 + 2 + 320 / 7);
    }

    #[tokio::test]
    async fn a_stuck_device_answers_within_its_deadline() {
        // A TCP collector that accepts nothing: its accept queue is full.
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = sock.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            let c = tokio::time::timeout(
                Duration::from_millis(300),
                tokio::net::TcpStream::connect(addr),
            )
            .await;
            match c {
                Ok(Ok(c)) => fillers.push(c),
                _ => break,
            }
        }
        let cfg = DeviceConfig {
            path: "tcp/".into(),
            kind: "socket".into(),
            description: String::new(),
            options: BTreeMap::from([
                ("address".to_string(), addr.to_string()),
                ("write_timeout".to_string(), "1s".to_string()),
            ]),
            local: false,
            salt: hex::encode([9u8; 32]),
        };
        let w = Writer::start(Device::new(cfg, ChainState::default()).unwrap()).unwrap();
        let (signer, _) = Signer::generate().unwrap();
        let signer = Arc::new(signer);
        let started = std::time::Instant::now();
        let e = json!({"type": "request"}).as_object().unwrap().clone();
        assert!(w.write(e.clone(), &signer).await.is_err());
        assert!(w.write(e, &signer).await.is_err());
        assert!(started.elapsed() < Duration::from_millis(2500));
        assert!(!w.health_json()["ok"].as_bool().unwrap());
        drop(fillers);
    }
}
