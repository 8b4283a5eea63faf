//! The delivery policy against an in-memory sink that answers what each
//! test scripts: the checkpoint never passes an unacknowledged row, staged
//! rows give their memory back at once, and staged rows the sink gives up
//! stop the pipeline loudly.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use tidewater_sinks::{Delivery, Durable, HealthState, RejectedRow, Sink, SinkBatch, SinkError};
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::checkpoint::{Checkpoints, Entry};
use crate::file::FileId;
use crate::stats::Stats;
use crate::tasks::Critical;

/// One scripted answer; once a batch's script is used up it is delivered.
enum Answer {
    Retry,
    /// Staged, then given up by the sink (as on a full disk).
    StagedGivenUp,
    /// Staged; durable when the test sends on the channel it gets back.
    StagedUntilTold,
    Reject(Vec<usize>),
    RejectNothing,
}

#[derive(Default)]
struct Scripted {
    health: HealthState,
    script: Mutex<HashMap<String, VecDeque<Answer>>>,
    offered: Mutex<Vec<String>>,
    durable: Mutex<Vec<oneshot::Sender<()>>>,
}

impl Scripted {
    fn script(&self, batch: &str, answers: Vec<Answer>) {
        lock(&self.script).insert(batch.to_string(), answers.into());
    }

    fn offers(&self, batch: &str) -> usize {
        lock(&self.offered).iter().filter(|b| *b == batch).count()
    }
}

#[async_trait]
impl Sink for Scripted {
    fn name(&self) -> &str {
        "memory"
    }

    async fn deliver(&self, batch: &SinkBatch) -> Delivery {
        lock(&self.offered).push(batch.id.clone());
        let answer = lock(&self.script)
            .get_mut(&batch.id)
            .and_then(VecDeque::pop_front);
        match answer {
            None => Delivery::Delivered,
            Some(Answer::Retry) => {
                let e = SinkError::Task("no space left on device".into());
                self.health.failed(&e);
                Delivery::Retry(e)
            }
            Some(Answer::StagedGivenUp) => {
                let (_given_up, rx) = oneshot::channel();
                Delivery::Staged(Durable::new(vec![rx]))
            }
            Some(Answer::StagedUntilTold) => {
                let (tx, rx) = oneshot::channel();
                lock(&self.durable).push(tx);
                Delivery::Staged(Durable::new(vec![rx]))
            }
            Some(Answer::Reject(rows)) => Delivery::Rejected(
                rows.into_iter()
                    .map(|row| RejectedRow {
                        row,
                        reason: "does not fit".into(),
                    })
                    .collect(),
            ),
            Some(Answer::RejectNothing) => Delivery::Rejected(Vec::new()),
        }
    }

    fn health(&self) -> &HealthState {
        &self.health
    }
}

/// A worker over one sink and one file, and what the test looks at.
struct Harness {
    sink: Arc<Scripted>,
    checkpoints: Arc<Mutex<Checkpoints>>,
    tracker: Arc<Mutex<AckTracker>>,
    file: FileId,
    queue: Option<mpsc::Sender<Arc<Dispatched>>>,
    stats: Arc<crate::stats::SinkStats>,
    dir: tempfile::TempDir,
    worker: Option<tokio::task::JoinHandle<()>>,
    staged: Staged,
    failures: crate::tasks::Failures,
    budget: Arc<crate::memory::MemoryBudget>,
}

impl Harness {
    fn new(concurrency: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let checkpoints = Arc::new(Mutex::new(Checkpoints::open(dir.path()).expect("store")));
        let file = FileId::next();
        lock(&checkpoints).track(
            file,
            Entry {
                source: "app".into(),
                path: "/var/log/app.log".into(),
                dev: 1,
                ino: 1,
                head_len: 0,
                head_hash: 0,
                offset: 0,
            },
        );
        let tracker = Arc::new(Mutex::new(AckTracker::new(1, Arc::clone(&checkpoints))));
        let sink = Arc::new(Scripted::default());
        let as_sink: Arc<dyn Sink> = Arc::clone(&sink) as Arc<dyn Sink>;
        let stats = Stats::default().sink(&as_sink);
        let (critical, failures) = Critical::new();
        let staged = Staged::default();
        let w = Worker {
            sink: as_sink,
            tracker: Arc::clone(&tracker),
            stats: Arc::clone(&stats),
            staged: staged.clone(),
            data_dir: dir.path().to_path_buf(),
            critical,
        };
        let (queue, rx) = mpsc::channel(1);
        let rx: Queue = Arc::new(tokio::sync::Mutex::new(rx));
        let workers: Vec<_> = (0..concurrency)
            .map(|_| tokio::spawn(w.clone().run(Arc::clone(&rx))))
            .collect();
        let worker = tokio::spawn(async move {
            for w in workers {
                let _ = w.await;
            }
        });
        Self {
            sink,
            checkpoints,
            tracker,
            file,
            queue: Some(queue),
            stats,
            dir,
            worker: Some(worker),
            staged,
            failures,
            budget: Arc::new(crate::memory::MemoryBudget::new(
                1 << 20,
                tokio::runtime::Handle::current(),
            )),
        }
    }

    /// Offer the batch `id` of `rows` rows that ends at `end` in the file.
    async fn send(&self, id: &str, rows: usize, end: u64) {
        let batch_id = lock(&self.tracker).register(vec![(self.file, end)]);
        let schema = Arc::new(Schema::new(vec![Field::new(
            "message",
            DataType::Utf8,
            false,
        )]));
        let messages: Vec<String> = (0..rows).map(|r| format!("{id} row {r}")).collect();
        let records = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(messages))])
            .expect("batch");
        let item = Dispatched {
            id: batch_id,
            batch: SinkBatch {
                id: id.to_string(),
                records,
                origins: Arc::new([]),
                rows: None,
            },
            memory: self.budget.try_reserve(64 << 10).map(Arc::new),
            copy: None,
        };
        let queue = self.queue.as_ref().expect("not finished");
        queue.send(Arc::new(item)).await.expect("queue open");
    }

    fn committed(&self) -> u64 {
        lock(&self.checkpoints)
            .committed(self.file)
            .expect("tracked")
    }

    async fn wait_committed(&self, offset: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.committed() != offset {
            assert!(
                tokio::time::Instant::now() < deadline,
                "committed offset is {}, expected {offset}",
                self.committed()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Close the queue and wait for the workers and every staged batch.
    async fn finish(&mut self) {
        self.queue = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.await;
        }
        self.staged.drain(|| async {}).await;
    }
}

#[tokio::test]
async fn a_retried_batch_holds_the_checkpoint_behind_it() {
    let mut h = Harness::new(2);
    h.sink
        .script("b1", vec![Answer::Retry, Answer::Retry, Answer::Retry]);
    h.send("b1", 10, 100).await;
    h.send("b2", 10, 200).await;
    // b2 is delivered while b1 is still failing: nothing may be committed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while h.sink.offers("b2") == 0 || h.sink.offers("b1") < 2 {
        assert!(tokio::time::Instant::now() < deadline, "b1 and b2 offered");
        assert_eq!(h.committed(), 0, "the checkpoint passed the failing batch");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(h.committed(), 0);
    h.wait_committed(200).await;
    assert_eq!(h.sink.offers("b1"), 4);
    assert_eq!(h.sink.health.failed_total(), 3);
    h.finish().await;
    assert_eq!(h.stats.rows_delivered.get(), 20);
}

#[tokio::test]
async fn staged_rows_the_sink_gives_up_stop_the_pipeline_naming_the_sink() {
    let mut h = Harness::new(1);
    h.sink.script("b1", vec![Answer::StagedGivenUp]);
    h.send("b1", 5, 50).await;
    h.send("b2", 5, 100).await;
    let failure = tokio::time::timeout(Duration::from_secs(5), h.failures.first())
        .await
        .expect("a failure is reported");
    assert!(
        failure
            .starts_with("task sink memory staged batch b1 failed: the sink gave up staged rows"),
        "{failure}"
    );
    // b1 was not acknowledged: the checkpoint stays before it.
    h.finish().await;
    assert_eq!(h.committed(), 0);
    assert_eq!(h.sink.offers("b1"), 1);
}

#[tokio::test]
async fn a_staged_batch_is_acknowledged_only_once_durable() {
    let h = Harness::new(1);
    h.sink.script("b1", vec![Answer::StagedUntilTold]);
    h.send("b1", 5, 50).await;
    h.send("b2", 5, 100).await;
    // b2 is delivered, b1 only staged: the checkpoint waits for b1.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while h.sink.offers("b2") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "b2 offered");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(h.committed(), 0);
    // Staged rows gave their memory back; b2's went when it was delivered.
    assert_eq!(h.budget.reserved(), 0);
    for tx in lock(&h.sink.durable).drain(..) {
        let _ = tx.send(());
    }
    h.wait_committed(100).await;
}

#[tokio::test]
async fn rejected_rows_go_to_the_dead_letter_and_an_empty_rejection_does_not_panic() {
    let mut h = Harness::new(1);
    h.sink.script("b1", vec![Answer::Reject(vec![1, 3])]);
    h.sink.script("b2", vec![Answer::RejectNothing]);
    h.send("b1", 4, 40).await;
    h.send("b2", 4, 80).await;
    h.wait_committed(80).await;
    h.finish().await;
    assert_eq!(h.stats.rows_dead_lettered.get(), 2);
    assert_eq!(h.stats.rows_delivered.get(), 6);
    let dead = h.dir.path().join("dead_letter").join("memory");
    let files: Vec<_> = std::fs::read_dir(&dead)
        .expect("dead-letter dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    // Rejected rows are not offered again; nor is the batch.
    assert_eq!(h.sink.offers("b1"), 1);
}
