//! Wiring the stages together: sources → fan-out → sinks, and acks back.
//!
//! ```text
//!  tail thread(s) ──Batch──► dispatcher ──► sink queue ──► N workers per sink
//!        ▲   (bounded: 2)       │ register     (bounded)        │ deliver, retry
//!        │                      ▼                               ▼
//!   checkpoints ◄── commit ── AckTracker ◄────────── ack ───────┘
//! ```
//!
//! Every queue is bounded, so a slow sink stops the readers (the files are
//! the buffer). A batch is acknowledged by a sink only when it answered
//! delivered, or rejected rows that were written to the dead letter; the
//! tracker then commits offsets in file order. On SIGTERM/SIGINT the readers
//! stop, open batches are flushed and delivered up to `shutdown_timeout`, and
//! the checkpoint is written; a second signal exits at once.
//!
//! This module only wires: the data dir's lock is [`crate::data_dir`], the
//! checkpoint writer [`crate::checkpoint::writer`], the delivery policy
//! [`crate::deliver`], and the stop travels through one
//! [`CancellationToken`] tree ([`crate::shutdown`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tidewater_sinks::{Sink, SinkBatch};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::ack::AckTracker;
use crate::batch::{Batch, Builder};
use crate::checkpoint::{self, Checkpoints};
use crate::config::Config;
use crate::deliver::{Dispatched, Queue, Staged, Worker};
use crate::health::Health;
use crate::lock;
use crate::memory::MemoryBudget;
use crate::metrics::{Metrics, QueueDepth};
use crate::route::Routes;
use crate::shutdown::{CancellationToken, StopSignals};
use crate::source::SourceContext;
use crate::stats::Stats;
use crate::tasks::Critical;

/// Batches waiting between the sources and the dispatcher.
const SOURCE_QUEUE: usize = 1;

/// How `run` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Everything read was delivered and checkpointed.
    Drained,
    /// The shutdown deadline passed with batches still in flight; they will
    /// be read again on the next start.
    DeadlineExceeded { in_flight: usize },
    /// A stop signal came while waiting for another process to release the
    /// data dir: nothing was read.
    StoppedWaiting,
}

/// Everything built from a configuration, before anything runs.
pub struct Pipeline {
    config: Config,
    base_dir: PathBuf,
    data_dir: PathBuf,
    routes: Routes,
    sinks: Vec<(Arc<dyn Sink>, usize)>,
    _lock: std::fs::File,
}

impl Pipeline {
    /// Take the data dir's lock (waiting up to `lock_wait`), check the
    /// schema and open the sinks. `None`: SIGTERM or SIGINT came while
    /// waiting for the lock. Must run inside the (multi-thread) runtime.
    /// A BigQuery sink's table is created and checked here.
    pub async fn build(config: Config, base_dir: &Path) -> anyhow::Result<Option<Self>> {
        let data_dir = base_dir.join(&config.data_dir);
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("data_dir: cannot create {}", data_dir.display()))?;
        let Some(lock) = crate::data_dir::lock(&data_dir, config.lock_wait)? else {
            return Ok(None);
        };
        // Loading the configuration checked the routes: this builds them
        // again (the schema file is read again, relative to this process).
        let routes = config.routes().map_err(|e| anyhow::anyhow!("{e}"))?;
        let sinks = crate::sinks::build(&config, &routes, base_dir, &data_dir).await?;
        Ok(Some(Self {
            config,
            base_dir: base_dir.to_path_buf(),
            data_dir,
            routes,
            sinks,
            _lock: lock,
        }))
    }

    /// Run until the sources end (`once`) or a signal stops them.
    pub async fn run(mut self, once: bool, stats: Arc<Stats>) -> anyhow::Result<Ending> {
        let health = Arc::new(Health::new(
            self.sinks.iter().map(|(s, _)| Arc::clone(s)).collect(),
        ));
        let listener = crate::api::bind(&self.config.api).await?;
        let checkpoints = Arc::new(Mutex::new(Checkpoints::open(&self.data_dir)?));
        lock(&checkpoints).on_written(checkpointed(
            self.sinks.iter().map(|(s, _)| Arc::clone(s)).collect(),
        ));
        let tracker = Arc::new(Mutex::new(AckTracker::new(
            self.sinks.len(),
            Arc::clone(&checkpoints),
        )));
        // One token tree carries the stop. `stopping` is cancelled by the
        // first signal (the readers stop and the drain starts) or at the
        // end; `stopped`, its parent, only at the end: the checkpoint
        // writer keeps writing through the drain.
        let stopped = CancellationToken::new();
        let stopping = stopped.child_token();
        let memory = Arc::new(MemoryBudget::new(
            self.config.memory_limit / 2,
            tokio::runtime::Handle::current(),
        ));
        let (batch_tx, mut batch_rx) = mpsc::channel::<Batch>(SOURCE_QUEUE);
        let (critical, mut failures) = Critical::new();

        // The Pod's labels and annotations ([kubernetes]), kept current by a
        // poller until the end.
        let pod = self.config.kubernetes.as_ref().map(|k| {
            let (pod, refresher) = crate::pod::PodInfo::load(k, &self.base_dir);
            critical.spawn(
                "pod metadata refresher",
                refresher.run(crate::pod::REFRESH_INTERVAL, stopping.clone()),
            );
            pod
        });

        // Sources: one thread each (reading and parsing are blocking CPU
        // work), each building batches in its own table, masking and
        // dropping by its own rules.
        let with_origins = self.sinks.iter().any(|(s, _)| s.wants_origins());
        let mut readers = Vec::new();
        for (name, source) in &self.config.sources {
            let plan = &self.routes.sources[name];
            let mut builder = Builder::new(&plan.schema, &plan.columns, self.config.batch.clone())
                .map_err(|e| anyhow::anyhow!("sources.{name}: {e}"))?
                .for_source(name, plan.drop.clone(), plan.redactor.clone());
            if with_origins {
                builder = builder.with_origins();
            }
            if let Some(pod) = &pod {
                builder = builder.with_pod(pod.clone());
            }
            let cx = SourceContext {
                name: name.clone(),
                base_dir: self.base_dir.clone(),
                extra_keys: plan.body_keys(),
                builder,
                batches: batch_tx.clone(),
                checkpoints: Arc::clone(&checkpoints),
                stats: stats.source(name),
                memory: Arc::clone(&memory),
                shutdown: stopping.clone(),
                once,
            };
            let reader = source
                .spawn(cx, &critical)
                .context("cannot start a reader thread")?;
            readers.push(reader);
        }
        drop(batch_tx);

        // Sinks: a bounded queue each, drained by `concurrency` workers.
        let mut workers = Vec::new();
        let mut queues = Vec::new();
        let mut depths: Vec<(String, QueueDepth)> = Vec::new();
        let staged = Staged::default();
        let mut routes = Vec::new();
        for (sink, concurrency) in &self.sinks {
            let (tx, rx) = mpsc::channel::<Arc<Dispatched>>(1);
            let weak = tx.downgrade();
            depths.push((
                sink.name().to_string(),
                Box::new(move || {
                    weak.upgrade()
                        .map_or(0, |tx| tx.max_capacity() - tx.capacity())
                }),
            ));
            let queue: Queue = Arc::new(tokio::sync::Mutex::new(rx));
            let sink_stats = stats.sink(sink);
            let plan = self
                .routes
                .sinks
                .remove(sink.name())
                .context("a built sink has a route")?;
            routes.push((plan, Arc::clone(&sink_stats)));
            let worker = Worker {
                sink: Arc::clone(sink),
                tracker: Arc::clone(&tracker),
                stats: sink_stats,
                staged: staged.clone(),
                data_dir: self.data_dir.clone(),
                critical: critical.clone(),
            };
            for n in 0..*concurrency {
                let name = format!("sink {} worker {n}", sink.name());
                workers.push(critical.spawn(name, worker.clone().run(Arc::clone(&queue))));
            }
            queues.push(tx);
        }
        let sinks: Vec<Arc<dyn Sink>> = self.sinks.iter().map(|(s, _)| Arc::clone(s)).collect();
        if let Some(listener) = listener {
            let metrics = Metrics::new(
                Arc::clone(&stats),
                Arc::clone(&checkpoints),
                Arc::clone(&tracker),
                Arc::clone(&health),
                Arc::clone(&memory),
                depths,
            );
            let observed = Arc::new(crate::api::Observed {
                health: Arc::clone(&health),
                metrics: Arc::new(metrics),
            });
            critical.spawn("api server", crate::api::serve(listener, observed));
        }

        // Dispatcher: register each batch, then offer each sink the rows it
        // receives (its inputs, its `when`); a sink with no row of the
        // batch acknowledges it at once.
        let dispatch_tracker = Arc::clone(&tracker);
        let dispatch_memory = Arc::clone(&memory);
        let dispatcher = critical.spawn("dispatcher", async move {
            while let Some(batch) = batch_rx.recv().await {
                let id = lock(&dispatch_tracker).register(batch.acks);
                let origins: Arc<[tidewater_sinks::RowOrigin]> = batch.origins.into();
                let memory = batch.memory.map(Arc::new);
                for (q, (plan, stats)) in queues.iter().zip(&routes) {
                    let rows = if batch.records.num_rows() == 0 || !plan.receives(&batch.source) {
                        None
                    } else {
                        let selected = plan.select(&batch.records, &origins);
                        stats.rows_filtered.inc_by(selected.filtered);
                        selected.rows
                    };
                    let Some(selected) = rows else {
                        lock(&dispatch_tracker).ack(id);
                        continue;
                    };
                    let copy = selected.positions.as_ref().and_then(|_| {
                        dispatch_memory.charge(selected.records.get_array_memory_size())
                    });
                    let item = Arc::new(Dispatched {
                        id,
                        batch: SinkBatch {
                            id: batch.id.clone(),
                            records: selected.records,
                            origins: selected.origins,
                            rows: selected.positions,
                        },
                        memory: memory.clone(),
                        copy,
                    });
                    if q.send(item).await.is_err() {
                        return Ok(());
                    }
                }
            }
            Ok(())
        });

        // At rest after a burst, give malloc's free memory back to the
        // kernel (a sidecar spends most of its life at rest).
        let resting = stopping.clone();
        critical.spawn("memory release at rest", async move {
            let mut rest = crate::recycle::AtRest::default();
            let mut tick = tokio::time::interval(crate::recycle::REST_CHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = resting.cancelled() => return Ok(()),
                    _ = tick.tick() => {}
                }
                if rest.check() {
                    tokio::task::spawn_blocking(crate::recycle::release_free_memory).await?;
                }
            }
        });

        // Checkpoint writer: every `checkpoint_interval` until the end.
        let checkpoint_writer = critical.spawn(
            "checkpoint writer",
            checkpoint::writer::run(
                Arc::clone(&checkpoints),
                self.config.checkpoint_interval,
                stopped.clone(),
            ),
        );

        let drain = async {
            for r in readers {
                match tokio::task::spawn_blocking(move || r.join()).await {
                    Ok(Ok(Ok(()))) => {}
                    Ok(Ok(Err(e))) => {
                        tracing::error!(error = %e, "source stopped");
                        health.source_failed(e.to_string());
                    }
                    _ => {
                        tracing::error!("a source thread panicked");
                        health.source_failed("a source thread panicked".into());
                    }
                }
            }
            let _ = dispatcher.await;
            for w in workers {
                let _ = w.await;
            }
            // Everything is offered: complete what sinks staged (and what
            // they staged again), and wait until it is durable.
            staged
                .drain(|| async {
                    for sink in &sinks {
                        sink.flush().await;
                    }
                })
                .await;
        };
        tokio::pin!(drain);

        let mut signals = StopSignals::listen()?;
        let mut deadline: Option<Instant> = None;
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let ending = loop {
            tokio::select! {
                _ = &mut drain => break Ok(Ending::Drained),
                failure = failures.first() => break Err(failure),
                () = signals.recv() => {}
                _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                    let in_flight = lock(&tracker).in_flight();
                    tracing::warn!(in_flight, "shutdown deadline passed; undelivered batches will be read again on the next start");
                    break Ok(Ending::DeadlineExceeded { in_flight });
                }
            }
            // A signal arrived.
            if deadline.is_some() {
                tracing::warn!("second signal: exiting now without draining");
                let _ = checkpoint::writer::save(&checkpoints).await;
                std::process::exit(130);
            }
            tracing::info!(timeout = ?self.config.shutdown_timeout, "stopping: draining in-flight batches");
            stopping.cancel();
            deadline = Some(Instant::now() + self.config.shutdown_timeout);
        };
        // Everything stops; no periodic write may still be running when the
        // final one starts.
        stopped.cancel();
        let _ = checkpoint_writer.await;
        // What is committed was acknowledged by every sink: it is safe to
        // keep even when a task died.
        let saved = checkpoint::writer::save(&checkpoints)
            .await
            .context("writing the final checkpoint");
        match ending {
            Ok(ending) => saved.map(|()| ending),
            Err(failure) => Err(anyhow::anyhow!(
                "{failure}: stopping (a restart resumes from the checkpoint)"
            )),
        }
    }
}

/// Tells every sink what a written checkpoint holds.
fn checkpointed(sinks: Vec<Arc<dyn Sink>>) -> crate::checkpoint::Written {
    Arc::new(move |entries| {
        let files: Vec<tidewater_sinks::CommittedFile> = entries
            .iter()
            .map(|e| tidewater_sinks::CommittedFile {
                file: e.inode().key(),
                offset: e.offset,
            })
            .collect();
        for sink in &sinks {
            sink.checkpointed(&files);
        }
    })
}
