//! Which Events are published, and how: one Event per node result in upstream's exact words,
//! correlated as upstream's client-go recorder does it, so a few nodes give one Event each and a
//! thousand nodes do not flood the API server.
//!
//! [`Correlator`] decides (a pure function of what it was shown and the time it is told):
//! - **Repeats**: a note already published for the same object, type and reason increments that
//!   Event's series (one Event with a count, as `kubectl get events` shows it) instead of a new
//!   Event.
//! - **Similar notes**: once [`MAX_SIMILAR`] distinct notes of one object, type and reason were
//!   seen within [`SIMILAR_WINDOW`], the next are counted on one Event "(combined from similar
//!   events): <the first of them>" (client-go's aggregator; it rewrites the message to the latest
//!   note, which an events.k8s.io Event cannot: its note is immutable). Warnings are similar
//!   only when they concern the same node: every node's Warning keeps its own words, whatever
//!   the other nodes report (upstream's recorder combines across nodes, and then drops).
//! - **Rate**: every Event costs a token from a bucket of [`BURST`], refilled one per
//!   [`REFILL`] (client-go's spam filter); an Event without a token is dropped (the caller
//!   counts it). A Warning about a node draws from that node's own bucket, so no node can
//!   silence another node's Warnings; Normal node results share their FileIntegrity's bucket
//!   (what bounds the writes at a thousand nodes: the node statuses keep every result); Events
//!   about the FileIntegrity itself (its phase) have their own bucket, which nodes cannot spend.
//!
//! Memory is bounded: at most [`MAX_KEYS`] aggregates, series and buckets each, the oldest
//! forgotten first.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Distinct notes of one object, type and reason before the next are combined (client-go's
/// `maxEvents`).
pub const MAX_SIMILAR: usize = 10;
/// How long similar notes count towards [`MAX_SIMILAR`] (client-go's `maxIntervalInSeconds`).
pub const SIMILAR_WINDOW: Duration = Duration::from_secs(600);
/// Events a bucket allows at once (client-go's spam filter burst).
pub const BURST: f64 = 25.0;
/// One more Event per this long (client-go's spam filter: 1/300 per second).
pub const REFILL: Duration = Duration::from_secs(300);
/// The prefix of a combined note, client-go's words.
pub const COMBINED: &str = "(combined from similar events): ";
/// The most aggregates, series and buckets kept (client-go's LRU caches hold 4,096).
pub const MAX_KEYS: usize = 4096;
/// The longest note of an Event (events.k8s.io/v1 refuses more than 1 kB).
pub const MAX_NOTE: usize = 1024;

/// What an Event is about, as the correlator tells Events apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The UID of the object the Event regards (a FileIntegrity).
    pub object: String,
    pub warning: bool,
    pub reason: String,
    /// The node it concerns, for node results.
    pub node: Option<String>,
}

/// What to do with one Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emit {
    /// Create a new Event named `name` with `note`.
    Create { name: String, note: String },
    /// Count on the series of the Event `name` (its note stays its first: an events.k8s.io
    /// note is immutable).
    Repeat { name: String, count: i32 },
    /// Counted on a series whose Event is still being created: written once it is
    /// ([`Correlator::created`]).
    Coalesced,
    /// No token left in the subject's bucket: not published.
    Dropped,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SeriesKey {
    /// Exactly this note (client-go's logger).
    Note(AggregateKey, String),
    /// Every note beyond [`MAX_SIMILAR`] (client-go's aggregate).
    Combined(AggregateKey),
}

/// Object, type and reason (and the node, for a Warning): what "similar" means.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AggregateKey {
    object: String,
    warning: bool,
    reason: String,
    node: Option<String>,
}

/// The bucket an Event draws from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum BucketKey {
    /// A Warning about one node.
    Node(String, String),
    /// Normal node results of one object.
    NodeResults(String),
    /// Events about the object itself.
    Object(String),
}

struct Aggregate {
    notes: BTreeSet<String>,
    last: Instant,
}

struct Series {
    name: String,
    count: i32,
    last: Instant,
    /// Its Event exists (its create returned).
    created: bool,
    /// Repeats were counted while it was being created.
    pending: bool,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
pub struct Correlator {
    aggregates: HashMap<AggregateKey, Aggregate>,
    series: HashMap<SeriesKey, Series>,
    buckets: HashMap<BucketKey, Bucket>,
}

impl Correlator {
    /// Decide the Event `note` about `subject` at `now`; `new_name` names it if it is created.
    pub fn observe(
        &mut self,
        subject: &Subject,
        note: &str,
        now: Instant,
        new_name: String,
    ) -> Emit {
        let note = cut(note, MAX_NOTE - COMBINED.len());
        let key = AggregateKey {
            object: subject.object.clone(),
            warning: subject.warning,
            reason: subject.reason.clone(),
            node: subject.node.clone().filter(|_| subject.warning),
        };
        let bucket = match (&subject.node, subject.warning) {
            (Some(node), true) => BucketKey::Node(subject.object.clone(), node.clone()),
            (Some(_), false) => BucketKey::NodeResults(subject.object.clone()),
            (None, _) => BucketKey::Object(subject.object.clone()),
        };
        if !self.take_token(bucket, now) {
            return Emit::Dropped;
        }

        bound(&mut self.aggregates, |a| a.last, now);
        let aggregate = self
            .aggregates
            .entry(key.clone())
            .or_insert_with(|| Aggregate {
                notes: BTreeSet::new(),
                last: now,
            });
        if now.saturating_duration_since(aggregate.last) > SIMILAR_WINDOW {
            aggregate.notes.clear();
        }
        aggregate.last = now;
        // Only whether there are MAX_SIMILAR matters: no more are kept.
        if aggregate.notes.len() < MAX_SIMILAR {
            aggregate.notes.insert(note.to_owned());
        }
        let (series_key, note) = if aggregate.notes.len() < MAX_SIMILAR {
            (SeriesKey::Note(key, note.to_owned()), note.to_owned())
        } else {
            (SeriesKey::Combined(key), format!("{COMBINED}{note}"))
        };

        bound(&mut self.series, |s| s.last, now);
        match self.series.get_mut(&series_key) {
            Some(s) => {
                s.count = s.count.saturating_add(1);
                s.last = now;
                if !s.created {
                    s.pending = true;
                    return Emit::Coalesced;
                }
                Emit::Repeat {
                    name: s.name.clone(),
                    count: s.count,
                }
            }
            None => {
                self.series.insert(
                    series_key,
                    Series {
                        name: new_name.clone(),
                        count: 1,
                        last: now,
                        created: false,
                        pending: false,
                    },
                );
                Emit::Create {
                    name: new_name,
                    note,
                }
            }
        }
    }

    /// The Event `name` was created: the repeat to write now, when some were counted meanwhile.
    pub fn created(&mut self, name: &str) -> Option<Emit> {
        let s = self.series.values_mut().find(|s| s.name == name)?;
        s.created = true;
        std::mem::take(&mut s.pending).then(|| Emit::Repeat {
            name: s.name.clone(),
            count: s.count,
        })
    }

    /// Forget the series of an Event that could not be written, or that is gone (Events expire):
    /// the next is created anew.
    pub fn failed(&mut self, name: &str) {
        self.series.retain(|_, s| s.name != name);
    }

    fn take_token(&mut self, key: BucketKey, now: Instant) -> bool {
        bound(&mut self.buckets, |b| b.at, now);
        let b = self.buckets.entry(key).or_insert(Bucket {
            tokens: BURST,
            at: now,
        });
        let refilled = now.saturating_duration_since(b.at).as_secs_f64() / REFILL.as_secs_f64();
        b.tokens = (b.tokens + refilled).min(BURST);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Keep `map` under [`MAX_KEYS`] before an insert: the entries idle longest go first.
fn bound<K: Clone + Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    last: impl Fn(&V) -> Instant,
    now: Instant,
) {
    if map.len() < MAX_KEYS {
        return;
    }
    let mut ages: Vec<Duration> = map
        .values()
        .map(|v| now.saturating_duration_since(last(v)))
        .collect();
    ages.sort_unstable();
    // Drop the idlest quarter at once, so a full map is not sorted at every insert.
    let keep = ages[ages.len() * 3 / 4 - 1];
    map.retain(|_, v| now.saturating_duration_since(last(v)) < keep);
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
