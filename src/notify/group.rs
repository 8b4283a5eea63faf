//! Grouping events by fingerprint, so an error storm makes a handful of
//! posts rather than thousands.
//!
//! The first event of a fingerprint is posted at once. Events with the same
//! fingerprint that follow within `window` are held (unacknowledged) and
//! posted as one "N more like this" message when the window ends, or earlier
//! when `flush_at` of them are held (the broker's prefetch bounds how many
//! unacknowledged messages a consumer may hold). Every message is acked only
//! with the post that covers it.

use std::collections::HashMap;
use std::time::Duration;

use tidewater_sinks::event::ErrorEvent;
use tokio::time::Instant;

/// A message to post and the broker deliveries it covers.
#[derive(Debug)]
pub struct Post<A> {
    /// The event shown.
    pub event: ErrorEvent,
    /// How many events the post stands for (1 for a first occurrence).
    pub count: u64,
    /// Whether this is a summary of repeats ("N more like this").
    pub repeat: bool,
    /// Over how long the repeats arrived.
    pub span: Duration,
    pub deliveries: Vec<A>,
}

struct Group<A> {
    sample: ErrorEvent,
    window_end: Instant,
    first_held: Option<Instant>,
    held: Vec<A>,
}

/// The open groups, keyed by fingerprint.
pub struct Grouper<A> {
    window: Duration,
    flush_at: usize,
    groups: HashMap<String, Group<A>>,
}

impl<A> Grouper<A> {
    pub fn new(window: Duration, flush_at: usize) -> Self {
        Self {
            window,
            flush_at: flush_at.max(1),
            groups: HashMap::new(),
        }
    }

    /// Take in one event; returns a post to make now, if any.
    pub fn add(&mut self, event: ErrorEvent, delivery: A, now: Instant) -> Option<Post<A>> {
        match self.groups.get_mut(&event.fingerprint) {
            None => {
                self.groups.insert(
                    event.fingerprint.clone(),
                    Group {
                        sample: event.clone(),
                        window_end: now + self.window,
                        first_held: None,
                        held: Vec::new(),
                    },
                );
                Some(Post {
                    event,
                    count: 1,
                    repeat: false,
                    span: Duration::ZERO,
                    deliveries: vec![delivery],
                })
            }
            Some(group) => {
                group.first_held.get_or_insert(now);
                group.held.push(delivery);
                (group.held.len() >= self.flush_at).then(|| take(group, now))
            }
        }
    }

    /// Posts for the groups whose window has ended; those groups close.
    pub fn due(&mut self, now: Instant) -> Vec<Post<A>> {
        let ended: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.window_end <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut posts = Vec::new();
        for key in ended {
            if let Some(mut group) = self.groups.remove(&key) {
                if !group.held.is_empty() {
                    posts.push(take(&mut group, now));
                }
            }
        }
        posts
    }

    /// Every held delivery (at shutdown: to be handed back to the broker).
    pub fn drain(&mut self) -> Vec<A> {
        self.groups.drain().flat_map(|(_, g)| g.held).collect()
    }
}

fn take<A>(group: &mut Group<A>, now: Instant) -> Post<A> {
    let held = std::mem::take(&mut group.held);
    let span = group
        .first_held
        .take()
        .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
    Post {
        event: group.sample.clone(),
        count: held.len() as u64,
        repeat: true,
        span,
        deliveries: held,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(fingerprint: &str) -> ErrorEvent {
        ErrorEvent {
            id: "id".into(),
            timestamp: None,
            level: Some("error".into()),
            message: "boom".into(),
            namespace: None,
            pod: None,
            container: None,
            node: None,
            fields: Default::default(),
            fingerprint: fingerprint.into(),
        }
    }

    #[test]
    fn a_storm_makes_few_posts_with_exact_counts() {
        let t0 = Instant::now();
        let mut g = Grouper::new(Duration::from_secs(60), 1000);
        let mut posts = Vec::new();
        for i in 0..10_000u32 {
            posts.extend(g.add(event("f"), i, t0));
        }
        posts.extend(g.due(t0 + Duration::from_secs(61)));
        assert_eq!(posts.iter().map(|p| p.count).sum::<u64>(), 10_000);
        assert_eq!(
            posts.iter().map(|p| p.deliveries.len()).sum::<usize>(),
            10_000
        );
        assert!(posts.len() <= 11, "{} posts", posts.len());
        assert!(!posts[0].repeat && posts[1].repeat);
    }

    #[test]
    fn different_fingerprints_are_posted_separately_and_windows_close() {
        let t0 = Instant::now();
        let mut g = Grouper::new(Duration::from_secs(10), 100);
        assert!(g.add(event("a"), 1, t0).is_some());
        assert!(g.add(event("b"), 2, t0).is_some());
        assert!(g.add(event("a"), 3, t0).is_none());
        assert!(g.due(t0 + Duration::from_secs(5)).is_empty());
        let posts = g.due(t0 + Duration::from_secs(10));
        assert_eq!(posts.len(), 1, "only a held repeats");
        assert_eq!(posts[0].deliveries, vec![3]);
        // After its window, a fingerprint is new again.
        assert!(g.add(event("a"), 4, t0 + Duration::from_secs(11)).is_some());
    }
}
