//! Leases of admissions taken from Redis. A request whose buckets (a credential's, its
//! endpoint class's, its organization's) are in heavy use on this instance asks Redis,
//! in the same atomic script step as any check, for several admissions at once: each
//! is a GCRA admission of every one of those buckets, taken in Redis exactly as a
//! request's would be. The instance then hands them out to the next requests of the
//! same buckets without a round trip, and gives back to Redis what it has not handed
//! out [`LEASE_TTL`] after its last grant. So every admission is still taken from the shared
//! buckets (instances together never admit more than one would); what a lease changes
//! is who may spend an admission for those few milliseconds.
//!
//! A lease is sized by use: a bucket set starts with single checks, and the next lease
//! is twice the last (up to [`MAX_LEASE`]) while leases are being spent within their
//! time, but never more than half of what its tightest bucket had left (counting what
//! this instance holds), so that near a limit checks go one by one again and instances
//! share the last admissions out. The next lease is asked for in the background once a
//! quarter of the current one is spent, one ask per bucket set at a time; a request
//! that finds nothing held while an ask is under way waits for its answer (at most as
//! long as an answer from Redis may take) rather than making a check of its own. At a
//! quota's own rates (a few requests a second) a lease stays at one: only requests of
//! one bucket set less than [`LEASE_TTL`] apart, a burst or a flood against a large
//! quota, are served from leases.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

use super::{Bucket, Subject, Verdict, Verdicts, MAX_ITEMS};

/// Longest time an admission taken from Redis is held here before being given back.
pub(crate) const LEASE_TTL: Duration = Duration::from_millis(20);
/// Most admissions taken in one lease.
pub(crate) const MAX_LEASE: u32 = 64;
/// Longest wait for an ask's answer before another may be made (Redis's own timeouts
/// end one long before).
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// Independent locks over the table, so that unrelated bucket sets rarely meet.
const SHARDS: usize = 16;

/// A bucket's subject, owned.
#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Ip(IpAddr),
    Id(String),
}

impl Owned {
    fn of(subject: Subject<'_>) -> Owned {
        match subject {
            Subject::Ip(ip) => Owned::Ip(ip),
            Subject::Id(id) => Owned::Id(id.clone()),
        }
    }

    fn is(&self, subject: Subject<'_>) -> bool {
        match (self, subject) {
            (Owned::Ip(a), Subject::Ip(b)) => *a == b,
            (Owned::Id(a), Subject::Id(b)) => a == b,
            _ => false,
        }
    }
}

/// A bucket set, owned: what a lease is for, and an ask answered in the background.
#[derive(Debug)]
pub(crate) struct Identity(Vec<(Bucket, Owned)>);

impl Identity {
    pub fn of(items: &[(Bucket, Subject<'_>)]) -> Identity {
        Identity(items.iter().map(|&(bucket, subject)| (bucket, Owned::of(subject))).collect())
    }

    /// Whether this is the bucket set `items`.
    fn is(&self, items: &[(Bucket, Subject<'_>)]) -> bool {
        self.0.len() == items.len() && self.0.iter().zip(items).all(|((b, o), (bucket, subject))| b == bucket && o.is(*subject))
    }

    pub fn items(&self) -> Vec<(Bucket, Subject<'_>)> {
        self.0
            .iter()
            .map(|(bucket, owned)| {
                let subject = match owned {
                    Owned::Ip(ip) => Subject::Ip(*ip),
                    Owned::Id(id) => Subject::Id(id),
                };
                (*bucket, subject)
            })
            .collect()
    }
}

/// What one bucket had left once the lease was taken, when it is full again, and its
/// emission interval (an admission not yet handed out brings that forward by one).
#[derive(Clone, Copy, Debug)]
struct Base {
    remaining: u32,
    full_at: Instant,
    t: Duration,
}

/// The admissions of one bucket set held here.
struct Lease {
    identity: Identity,
    /// Admissions not handed out yet.
    left: u32,
    /// Admissions taken by the last grant.
    granted: u32,
    bases: [Option<Base>; MAX_ITEMS],
    expires: Instant,
    /// The Redis keys with their `t` and `tau` in µs, to give back what is left.
    keys: Keys,
    /// Since when an ask for more is under way.
    asking: Option<Instant>,
    /// Woken when that ask is answered.
    answered: Arc<Notify>,
}

impl Lease {
    fn is_for(&self, items: &[(Bucket, Subject<'_>)]) -> bool {
        self.identity.is(items)
    }

    /// Whether an ask for more is under way (one whose request went away is forgotten
    /// after `ASK_TIMEOUT`).
    fn asking(&self, now: Instant) -> bool {
        self.asking.is_some_and(|since| now.saturating_duration_since(since) < ASK_TIMEOUT)
    }

    /// At most half of what the tightest bucket had left, counting what is held here
    /// (at least one).
    fn cap(&self) -> u32 {
        let least = self.bases.iter().flatten().map(|b| b.remaining).min().unwrap_or(0);
        (least.saturating_add(self.left) / 2).max(1)
    }
}

/// The outcome of [`Leases::take`].
pub(crate) enum Took {
    /// One admission handed out here, with each bucket's verdict, and the size of the
    /// lease to ask for now in the background, if any.
    Held(Verdicts, Option<u32>),
    /// Nothing held, but an ask is under way: wait for its answer, then take again.
    Wait(Pin<Box<OwnedNotified>>),
    /// Nothing held: ask Redis.
    Ask(Ask),
}

/// Each bucket's Redis key with its `t` and `tau` in µs, as the script takes them.
pub(crate) type Keys = Vec<(String, u64, u64)>;
/// Admissions a lease did not hand out, with its buckets' keys: given back to Redis.
pub(crate) type GiveBack = (u32, Keys);

/// What to ask Redis for when no admission is held: how many admissions, and what to
/// give back first (the leftover of an expired lease, with its keys).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Ask {
    pub want: u32,
    pub give_back: Option<GiveBack>,
}

/// The leases of one instance.
pub(crate) struct Leases {
    shards: Box<[Mutex<HashMap<u64, Lease>>]>,
    hasher: foldhash::fast::FixedState,
}

impl Leases {
    pub fn new() -> Leases {
        Leases {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    fn hash(&self, items: &[(Bucket, Subject<'_>)]) -> u64 {
        let mut state = self.hasher.build_hasher();
        for &(bucket, subject) in items {
            bucket.hash(&mut state);
            match subject {
                Subject::Ip(ip) => ip.hash(&mut state),
                Subject::Id(id) => id.hash(&mut state),
            }
        }
        state.finish()
    }

    fn shard(&self, hash: u64) -> &Mutex<HashMap<u64, Lease>> {
        &self.shards[(hash as usize) % SHARDS]
    }

    /// One admission of `items` from a live lease, with each bucket's verdict as Redis
    /// would give it had no other instance checked meanwhile, and the size of the next
    /// lease to ask for now, in the background, once a quarter of this one is spent (so
    /// that it rarely runs dry). One ask per bucket set is under way at a time: a request that
    /// finds nothing held meanwhile waits for its answer, rather than each making one.
    pub fn take(&self, items: &[(Bucket, Subject<'_>)], now: Instant) -> Took {
        let hash = self.hash(items);
        let mut shard = self.shard(hash).lock();
        let Some(lease) = shard.get_mut(&hash).filter(|lease| lease.is_for(items)) else {
            return Took::Ask(Ask { want: 1, give_back: None });
        };
        let asking = lease.asking(now);
        if now >= lease.expires && !asking {
            let used = lease.granted.saturating_sub(lease.left);
            let want = used.min(lease.cap()).max(1);
            let give_back = (lease.left > 0).then(|| (lease.left, std::mem::take(&mut lease.keys)));
            shard.remove(&hash);
            return Took::Ask(Ask { want, give_back });
        }
        let next = lease.granted.saturating_mul(2).min(MAX_LEASE).min(lease.cap());
        if lease.left == 0 {
            if asking {
                let mut answered = Box::pin(lease.answered.clone().notified_owned());
                answered.as_mut().enable();
                return Took::Wait(answered);
            }
            if next < 2 {
                return Took::Ask(Ask { want: 1, give_back: None });
            }
            lease.asking = Some(now);
            return Took::Ask(Ask { want: next, give_back: None });
        }
        lease.left -= 1;
        let mut verdicts = Verdicts::default();
        for base in lease.bases.iter().take(items.len()).flatten() {
            let full_at = base.full_at.checked_sub(base.t * lease.left).unwrap_or(now);
            verdicts.push(Verdict::Admitted {
                remaining: base.remaining.saturating_add(lease.left),
                reset: full_at.saturating_duration_since(now),
            });
        }
        let refill = !asking && next >= 2 && lease.left <= lease.granted - lease.granted / 4;
        if refill {
            lease.asking = Some(now);
        }
        Took::Held(verdicts, refill.then_some(next))
    }

    /// Records what Redis answered at `now` for `items`: `admitted` admissions, of which
    /// the asking request took `taken` (0 for an ask made in the background), `last`
    /// the verdicts of the last one, and `keys` the Redis keys checked. The answer to a
    /// lease (`lease`) joins what is still held of the same buckets, all of it to be
    /// handed out within `LEASE_TTL` of now; a single check's only brings the buckets'
    /// state up to date (or starts the record of a bucket set's use).
    #[allow(clippy::too_many_arguments)]
    pub fn grant(&self, items: &[(Bucket, Subject<'_>)], now: Instant, lease: bool, admitted: u32, taken: u32, last: &Verdicts, keys: Keys) {
        let mut bases = [None; MAX_ITEMS];
        for ((slot, verdict), &(_, t, _)) in bases.iter_mut().zip(last.iter()).zip(&keys) {
            let t = Duration::from_micros(t);
            *slot = match verdict {
                Verdict::Admitted { remaining, reset } => Some(Base { remaining, full_at: now + reset, t }),
                Verdict::Refused { .. } => Some(Base { remaining: 0, full_at: now, t }),
            };
        }
        let left = admitted.saturating_sub(taken);
        let hash = self.hash(items);
        let mut shard = self.shard(hash).lock();
        if let Some(held) = shard.get_mut(&hash).filter(|held| held.is_for(items)) {
            // A refusal's verdicts stop at the refusing bucket: what is still held is
            // handed out with the state of its own grant.
            if admitted > 0 || held.left == 0 {
                held.bases = bases;
            }
            if lease {
                held.left += left;
                held.granted = admitted.max(1);
                held.expires = now + LEASE_TTL;
                held.asking = None;
                if held.keys.is_empty() && left > 0 {
                    held.keys = keys;
                }
                held.answered.notify_waiters();
            }
            return;
        }
        let keys = if left > 0 { keys } else { Vec::new() };
        let lease = Lease { identity: Identity::of(items), left, granted: admitted.max(1), bases, expires: now + LEASE_TTL, keys, asking: None, answered: Arc::new(Notify::new()) };
        shard.insert(hash, lease);
    }

    /// An ask of `items` that Redis did not answer: another may be made.
    pub fn settle(&self, items: &[(Bucket, Subject<'_>)]) {
        let hash = self.hash(items);
        if let Some(lease) = self.shard(hash).lock().get_mut(&hash).filter(|lease| lease.is_for(items)) {
            lease.asking = None;
            lease.answered.notify_waiters();
        }
    }

    /// Drops expired leases; returns what they had left, to give back to Redis.
    pub fn sweep(&self, now: Instant) -> Vec<GiveBack> {
        let mut returns = Vec::new();
        for shard in self.shards.iter() {
            shard.lock().retain(|_, lease| {
                if now < lease.expires || lease.asking(now) {
                    return true;
                }
                if lease.left > 0 {
                    returns.push((lease.left, std::mem::take(&mut lease.keys)));
                }
                false
            });
        }
        returns
    }

    /// Whether any lease is held (so that the sweep has something to do).
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|shard| shard.lock().is_empty())
    }

    #[cfg(test)]
    pub fn left(&self, items: &[(Bucket, Subject<'_>)]) -> Option<u32> {
        let hash = self.hash(items);
        self.shard(hash).lock().get(&hash).filter(|lease| lease.is_for(items)).map(|lease| lease.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Class;
    use crate::principal::Plan;

    fn admitted(remaining: u32, reset_ms: u64) -> Verdict {
        Verdict::Admitted { remaining, reset: Duration::from_millis(reset_ms) }
    }

    fn verdicts(list: &[Verdict]) -> Verdicts {
        let mut out = Verdicts::default();
        for &v in list {
            out.push(v);
        }
        out
    }

    fn want(took: Took) -> Option<u32> {
        match took {
            Took::Ask(ask) => Some(ask.want),
            Took::Held(..) => None,
            Took::Wait(_) => Some(0),
        }
    }

    fn held(took: Took) -> (Verdicts, Option<u32>) {
        match took {
            Took::Held(verdicts, refill) => (verdicts, refill),
            _ => panic!("nothing held"),
        }
    }

    fn ask(took: Took) -> Option<Ask> {
        match took {
            Took::Ask(ask) => Some(ask),
            _ => None,
        }
    }

    #[test]
    fn a_lease_hands_out_what_it_holds_with_the_headers_redis_would_give() {
        let (key, org) = ("key_1".to_owned(), "org_1".to_owned());
        let items = [(Bucket::Key(Plan::Pro), Subject::Id(&key)), (Bucket::Class(Class::Detail), Subject::Id(&key)), (Bucket::Org(Plan::Pro), Subject::Id(&org))];
        let leases = Leases::new();
        let now = Instant::now();
        assert_eq!(ask(leases.take(&items, now)), Some(Ask { want: 1, give_back: None }), "nothing held: one check");
        // A single admission recorded: nothing left, so the next ask is for two, and
        // while it is under way other requests check one by one.
        let keys = vec![("c".to_owned(), 1000, 0), ("k".to_owned(), 2000, 0), ("o".to_owned(), 500, 0)];
        leases.grant(&items, now, false, 1, 1, &verdicts(&[admitted(400, 10), admitted(399, 5), admitted(479, 2)]), keys.clone());
        assert_eq!(want(leases.take(&items, now)), Some(2));
        assert_eq!(want(leases.take(&items, now)), Some(0), "one ask at a time: wait for it");
        // Four admissions: the asker's, and three handed out here, each one fewer left
        // and full again sooner by one interval (1, 2 and 0.5 ms) per admission held.
        leases.grant(&items, now, true, 4, 1, &verdicts(&[admitted(396, 40), admitted(395, 20), admitted(475, 8)]), keys.clone());
        let mut refills = Vec::new();
        for left in [2, 1, 0] {
            let (got, refill) = held(leases.take(&items, now));
            let reset = |ms: u64, t_us: u64| Duration::from_micros(ms * 1000 - t_us * u64::from(left));
            let expect = |remaining: u32, ms, t_us| Verdict::Admitted { remaining: remaining + left, reset: reset(ms, t_us) };
            assert_eq!(got.iter().collect::<Vec<_>>(), [expect(396, 40, 1000), expect(395, 20, 2000), expect(475, 8, 500)]);
            refills.push(refill);
        }
        // Half spent (2 of 4 left): the next lease, twice as large, is asked for once,
        // in the background.
        assert_eq!(refills, [Some(8), None, None]);
        assert_eq!(leases.left(&items), Some(0));
        assert_eq!(want(leases.take(&items, now)), Some(0), "the refill is under way");
        // A single check's answer meanwhile updates the state, not the lease.
        leases.grant(&items, now, false, 1, 1, &verdicts(&[admitted(389, 40), admitted(388, 20), admitted(468, 8)]), keys.clone());
        assert_eq!((want(leases.take(&items, now)), leases.left(&items)), (Some(0), Some(0)), "still under way");
        leases.grant(&items, now, true, 8, 0, &verdicts(&[admitted(388, 40), admitted(387, 20), admitted(467, 8)]), keys.clone());
        assert_eq!(leases.left(&items), Some(8), "a background ask takes none itself");
        // Another bucket set is not served from this lease.
        let other = "key_2".to_owned();
        let items2 = [(Bucket::Key(Plan::Pro), Subject::Id(&other))];
        assert_eq!(want(leases.take(&items2, now)), Some(1));
        // Expired with admissions left: they are given back, and the next ask is what the
        // last grant saw used.
        held(leases.take(&items, now));
        let later = now + LEASE_TTL;
        assert_eq!(ask(leases.take(&items, later)), Some(Ask { want: 1, give_back: Some((7, keys)) }));
        assert_eq!(leases.left(&items), None, "the expired lease is gone");
    }

    #[test]
    fn near_a_limit_leases_shrink_to_single_checks() {
        let key = "key_1".to_owned();
        let items = [(Bucket::Key(Plan::Starter), Subject::Id(&key))];
        let leases = Leases::new();
        let now = Instant::now();
        leases.grant(&items, now, true, 32, 1, &verdicts(&[admitted(40, 10)]), vec![("k".to_owned(), 1, 2)]);
        for _ in 0..31 {
            held(leases.take(&items, now));
        }
        leases.settle(&items);
        assert_eq!(want(leases.take(&items, now)), Some(20), "half of the 40 left");
        leases.grant(&items, now, true, 0, 1, &verdicts(&[Verdict::Refused { wait: Duration::from_millis(5), reset: Duration::from_millis(9) }]), Vec::new());
        assert_eq!(want(leases.take(&items, now)), Some(1), "refused: one at a time");
    }

    #[test]
    fn an_ask_that_went_away_is_forgotten() {
        let key = "key_1".to_owned();
        let items = [(Bucket::Key(Plan::Pro), Subject::Id(&key))];
        let leases = Leases::new();
        let now = Instant::now();
        leases.grant(&items, now, false, 1, 1, &verdicts(&[admitted(100, 1)]), vec![("k".to_owned(), 1, 2)]);
        assert_eq!(want(leases.take(&items, now)), Some(2));
        assert_eq!(want(leases.take(&items, now)), Some(0), "under way");
        assert_eq!(leases.sweep(now + LEASE_TTL), [], "kept while asking");
        assert_eq!(want(leases.take(&items, now + ASK_TIMEOUT)), Some(1), "expired: asked again from one");
        assert_eq!(leases.left(&items), None);
    }

    #[tokio::test]
    async fn a_request_waiting_for_an_ask_is_woken_by_its_answer() {
        let key = "key_1".to_owned();
        let items = [(Bucket::Key(Plan::Pro), Subject::Id(&key))];
        let leases = Leases::new();
        let now = Instant::now();
        let state = verdicts(&[admitted(100, 1)]);
        leases.grant(&items, now, false, 1, 1, &state, vec![("k".to_owned(), 1, 2)]);
        assert_eq!(want(leases.take(&items, now)), Some(2));
        let Took::Wait(waiting) = leases.take(&items, now) else { panic!("an ask is under way") };
        leases.grant(&items, now, true, 2, 1, &state, vec![("k".to_owned(), 1, 2)]);
        tokio::time::timeout(Duration::from_secs(1), waiting).await.expect("woken by the answer");
        assert_eq!(held(leases.take(&items, now)).1, Some(4), "the last one held: a refill is asked for");
        let Took::Wait(waiting) = leases.take(&items, now) else { panic!("the refill is under way") };
        leases.settle(&items);
        tokio::time::timeout(Duration::from_secs(1), waiting).await.expect("woken when the ask failed");
    }

    #[test]
    fn a_refusal_meanwhile_leaves_what_is_held_as_it_was_granted() {
        let (key, org) = ("key_1".to_owned(), "org_1".to_owned());
        let items = [(Bucket::Key(Plan::Pro), Subject::Id(&key)), (Bucket::Org(Plan::Pro), Subject::Id(&org))];
        let leases = Leases::new();
        let now = Instant::now();
        let keys = vec![("k".to_owned(), 1000, 0), ("o".to_owned(), 1000, 0)];
        leases.grant(&items, now, true, 4, 1, &verdicts(&[admitted(10, 5), admitted(20, 5)]), keys.clone());
        let refused = verdicts(&[Verdict::Refused { wait: Duration::from_millis(1), reset: Duration::from_millis(2) }]);
        leases.grant(&items, now, true, 0, 0, &refused, keys);
        let (got, _) = held(leases.take(&items, now));
        let remaining: Vec<u32> = got.iter().map(|v| match v { Verdict::Admitted { remaining, .. } => remaining, Verdict::Refused { .. } => 0 }).collect();
        assert_eq!(remaining, [12, 22], "both buckets, as granted, two still held");
    }

    #[test]
    fn expired_leases_are_swept_and_their_leftovers_returned() {
        let (a, b) = ("key_a".to_owned(), "key_b".to_owned());
        let (items_a, items_b) = ([(Bucket::Key(Plan::Pro), Subject::Id(&a))], [(Bucket::Key(Plan::Pro), Subject::Id(&b))]);
        let leases = Leases::new();
        let now = Instant::now();
        leases.grant(&items_a, now, true, 5, 1, &verdicts(&[admitted(100, 1)]), vec![("a".to_owned(), 1, 2)]);
        leases.grant(&items_b, now, false, 1, 1, &verdicts(&[admitted(100, 1)]), vec![("b".to_owned(), 1, 2)]);
        assert!(leases.sweep(now).is_empty() && !leases.is_empty(), "nothing expired yet");
        assert_eq!(leases.sweep(now + LEASE_TTL), [(4, vec![("a".to_owned(), 1, 2)])], "only what is left comes back");
        assert!(leases.is_empty());
    }
}
