//! `tidewater notify`: error events from RabbitMQ to Slack.
//!
//! Consumes a durable queue bound to the events' exchange (declaring it, and
//! its dead-letter queue `<queue>.dead`, if missing) with manual acks and a
//! prefetch limit. Events are grouped by fingerprint ([`group`]) and posted
//! to a Slack webhook ([`slack`]) at most once per `min_interval`. A message
//! is acked only after the post that covers it succeeded; after
//! `max_attempts` failed posts its messages are rejected to the dead-letter
//! queue. A lost broker connection is re-established with backoff (unacked
//! messages are redelivered by the broker). SIGTERM/SIGINT: stop consuming,
//! hand held messages back, finish the post in progress (up to
//! `shutdown_timeout`) and exit 0. The stop reaches the consumer, the
//! hand-over to the poster and the reconnect backoff through one
//! [`CancellationToken`].

pub mod group;
mod observe;
pub mod slack;

use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::Acker;
use serde::Serialize;
use tidewater_sinks::amqp::{declare_queue, open_connection, redact_url};
use tidewater_sinks::event::ErrorEvent;
use tidewater_sinks::Backoff;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::NotifyConfig;
use crate::shutdown::{CancellationToken, StopSignals};
use group::{Grouper, Post};
use observe::Observer;
use slack::{Failure, Outcome, Webhook};

/// What `notify` did, printed as JSON on stdout at exit.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub events: u64,
    pub posts: u64,
    pub acked: u64,
    pub dead_lettered: u64,
    pub invalid: u64,
    pub failed_attempts: u64,
}

/// Run until SIGTERM/SIGINT.
pub async fn run(config: NotifyConfig) -> anyhow::Result<Summary> {
    let url = match (&config.webhook_url, &config.webhook_url_file) {
        (Some(url), _) => url.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("notify.webhook_url_file: cannot read {}", path.display()))?
            .trim()
            .to_string(),
        (None, None) => anyhow::bail!("notify.webhook_url is not set"),
    };
    let webhook = Webhook::new(url)?;
    let counters = Arc::new(Observer::default());
    if let Some(listener) = crate::api::bind_or(&config.api, crate::api::DEFAULT_NOTIFY_API_ADDRESS)
        .await
        .context("notify.api")?
    {
        let endpoints: Arc<dyn crate::api::Endpoints> = counters.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::api::serve(listener, endpoints).await {
                tracing::error!(error = %format!("{e:#}"), "the notify API stopped");
            }
        });
    }
    let stop = CancellationToken::new();
    let mut signals = StopSignals::listen()?;
    let on_signal = stop.clone();
    tokio::spawn(async move {
        signals.recv().await;
        tracing::info!("stopping: handing held messages back and finishing the post in progress");
        on_signal.cancel();
    });

    let mut backoff = Backoff::default();
    loop {
        let started = Instant::now();
        match session(&config, &webhook, &counters, &stop).await {
            Ok(()) => break,
            Err(e) => {
                counters.disconnected(&format!("{e:#}"));
                counters.reconnects.inc();
                if started.elapsed() > std::time::Duration::from_secs(30) {
                    backoff = Backoff::default();
                }
                let delay = backoff.next_delay();
                tracing::warn!(broker = %redact_url(&config.url), error = %format!("{e:#}"), retry_in = ?delay, "broker connection lost; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    () = stop.cancelled() => break,
                }
            }
        }
    }
    Ok(counters.summary())
}

/// One connection's worth of consuming; `Ok` only when told to stop.
async fn session(
    config: &NotifyConfig,
    webhook: &Webhook,
    counters: &Arc<Observer>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let connection = open_connection(
        &config.url,
        "tidewater notify",
        config.tls_ca_file.as_deref(),
    )
    .await?;
    let channel = connection
        .create_channel()
        .await
        .context("opening a channel")?;
    declare_queue(
        &channel,
        &config.queue,
        &config.exchange,
        &config.binding_key,
    )
    .await
    .with_context(|| format!("declaring queue {}", config.queue))?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await
        .context("setting the prefetch")?;
    let mut consumer = channel
        .basic_consume(
            config.queue.as_str().into(),
            "tidewater-notify".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("starting to consume")?;
    counters.connected(&config.queue);
    tracing::info!(broker = %redact_url(&config.url), queue = %config.queue, "consuming error events");

    let (posts, queue) = mpsc::channel::<Post<Acker>>(64);
    let poster = tokio::spawn(poster(
        queue,
        webhook.clone(),
        config.clone(),
        Arc::clone(counters),
    ));
    let _abort_poster = AbortOnDrop(poster.abort_handle());
    let mut grouper = Grouper::new(
        config.group_window,
        usize::from(config.prefetch).div_ceil(2),
    );
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    let result = loop {
        tokio::select! {
            delivery = consumer.next() => {
                let delivery = match delivery {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => break Err(anyhow::Error::from(e).context("consuming")),
                    None => break Err(anyhow::anyhow!("the broker cancelled the consumer")),
                };
                match serde_json::from_slice::<ErrorEvent>(&delivery.data) {
                    Ok(event) => {
                        counters.events.inc();
                        counters.held.inc();
                        if let Some(post) = grouper.add(event, delivery.acker, Instant::now()) {
                            match hand_over(&posts, post, stop).await {
                                Handed::Yes => {}
                                Handed::Stopping => break Ok(()),
                                Handed::PosterGone => break Err(anyhow::anyhow!("the poster stopped")),
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a message that is not an error event: rejecting it to the dead-letter queue");
                        counters.invalid.inc();
                        let _ = delivery.acker.nack(BasicNackOptions { requeue: false, multiple: false }).await;
                    }
                }
            }
            _ = tick.tick() => {
                let mut outcome = Handed::Yes;
                for post in grouper.due(Instant::now()) {
                    outcome = hand_over(&posts, post, stop).await;
                    if !matches!(outcome, Handed::Yes) {
                        break;
                    }
                }
                match outcome {
                    Handed::Yes => {}
                    Handed::Stopping => break Ok(()),
                    Handed::PosterGone => break Err(anyhow::anyhow!("the poster stopped")),
                }
            }
            () = stop.cancelled() => break Ok(()),
        }
    };
    // Held messages go back to the queue for the next consumer.
    for acker in grouper.drain() {
        counters.held.dec();
        let _ = acker
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await;
    }
    drop(posts);
    if result.is_err() && poster.is_finished() {
        // A poster that died says why: the session is restarted with a new one.
        if let Err(e) = poster.await {
            if e.is_panic() {
                let panic = crate::tasks::panic_message(&*e.into_panic());
                return Err(anyhow::anyhow!("the Slack poster task panicked: {panic}"));
            }
        }
        return result;
    }
    if result.is_ok() {
        if tokio::time::timeout(config.shutdown_timeout, poster)
            .await
            .is_err()
        {
            tracing::warn!("a post was still in progress at the shutdown deadline; its messages stay in the queue");
        }
        let _ = connection
            .close(200, "tidewater notify stopping".into())
            .await;
    }
    result
}

enum Handed {
    Yes,
    Stopping,
    PosterGone,
}

/// Queue `post` for the poster, unless a stop comes first: then the post is
/// dropped unacknowledged, and the broker requeues its messages when the
/// connection closes. (The poster may be slow: Slack allows a post a second.)
async fn hand_over(
    posts: &mpsc::Sender<Post<Acker>>,
    post: Post<Acker>,
    stop: &CancellationToken,
) -> Handed {
    tokio::select! {
        sent = posts.send(post) => if sent.is_ok() { Handed::Yes } else { Handed::PosterGone },
        () = stop.cancelled() => Handed::Stopping,
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Posts one at a time, at most one per `min_interval`; acks on success,
/// dead-letters after `max_attempts` failures.
async fn poster(
    mut queue: mpsc::Receiver<Post<Acker>>,
    webhook: Webhook,
    config: NotifyConfig,
    counters: Arc<Observer>,
) {
    let mut last: Option<Instant> = None;
    while let Some(post) = queue.recv().await {
        let body = slack::message(&post, config.link_template.as_deref());
        let mut backoff = Backoff::default();
        let mut attempts = 0;
        let posted = loop {
            if let Some(t) = last {
                tokio::time::sleep_until(t + config.min_interval).await;
            }
            let started = Instant::now();
            last = Some(started);
            let outcome = webhook.post(&body).await;
            counters
                .post_seconds
                .observe(started.elapsed().as_secs_f64());
            let wait = match outcome {
                Outcome::Posted => break true,
                Outcome::Failed(failure) => {
                    counters.post_failed(&failure);
                    match failure {
                        Failure::RateLimited(wait) => {
                            tracing::warn!(retry_in = ?wait, "Slack rate limit (429)");
                            wait
                        }
                        other => {
                            let wait = backoff.next_delay();
                            tracing::warn!(error = %other, retry_in = ?wait, "posting to Slack failed");
                            wait
                        }
                    }
                }
            };
            attempts += 1;
            if attempts >= config.max_attempts {
                break false;
            }
            tokio::time::sleep(wait).await;
        };
        let n = post.deliveries.len() as u64;
        if posted {
            counters.posted();
            counters.posts.inc();
            counters.grouped.inc_by(n.saturating_sub(1));
            for acker in &post.deliveries {
                if let Err(e) = acker.ack(BasicAckOptions::default()).await {
                    tracing::warn!(error = %e, "cannot ack (the broker will redeliver)");
                }
            }
            counters.acked.inc_by(n);
            counters.held.dec_by(n as i64);
            tracing::info!(fingerprint = %post.event.fingerprint, count = post.count, repeat = post.repeat, "posted to Slack");
        } else {
            for acker in &post.deliveries {
                let _ = acker
                    .nack(BasicNackOptions {
                        requeue: false,
                        multiple: false,
                    })
                    .await;
            }
            counters.dead_lettered.inc_by(n);
            counters.held.dec_by(n as i64);
            tracing::error!(fingerprint = %post.event.fingerprint, messages = n, attempts, queue = %format!("{}.dead", config.queue), "giving up on Slack: messages sent to the dead-letter queue");
        }
    }
}
