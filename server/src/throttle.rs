//! Cost-based throttling of GraphQL per caller, as Shopify's GraphQL Admin API does it: every
//! caller has a leaky bucket of cost points; an operation takes its calculated cost
//! (`extensions.cost.requestedQueryCost`) out when it has validated, before anything runs, and
//! the bucket fills again at a steady restore rate. An operation that finds too few points is
//! refused `THROTTLED` with the seconds to wait.
//!
//! A signed-in caller's bucket is keyed by who it is — subject and organisation — never by the
//! token string, which changes at every refresh. Anonymous callers have buckets of their own
//! limits, keyed by client address ([`TrustedProxies::client_address`]); IPv6 addresses count by
//! their /64, the block one subscriber gets, so walking through one's own block gains nothing.
//!
//! Buckets live in this instance's memory: behind a load balancer each instance has its own, so
//! a caller's capacity is per instance (see the README). Both maps are bounded: a bucket that
//! has filled up again is the same as none and is swept out, and when a map still holds
//! [`MAX_BUCKETS`] the callers that do not fit share one overflow bucket, so a flood of fresh
//! addresses throttles itself rather than growing memory or starving the callers already known.
//!
//! Hand-written rather than `governor` (which limits ingest): governor's GCRA answers only
//! "yes, with so much left" or "not before", so reading a bucket's level without charging it —
//! which every response reports in `throttleStatus`, refused ones too — is not possible there.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::{Actor, Principal};

/// Most buckets kept per kind of caller (signed-in, anonymous); the callers past it share one.
pub const MAX_BUCKETS: usize = 50_000;
/// How often a full map may be swept for buckets that have filled up again: a sweep walks every
/// bucket, so a flood of new callers must not trigger one per request.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The size and restore rate of one kind of caller's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketLimits {
    /// Points a full bucket holds (`maximumAvailable`).
    pub capacity: u32,
    /// Points restored per second (`restoreRate`).
    pub restore_rate: u32,
}

/// The throttle's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleSettings {
    pub signed_in: BucketLimits,
    pub anonymous: BucketLimits,
    pub trusted_proxies: TrustedProxies,
}

/// An address block: one address, or a CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`VELFERD_TRUSTED_PROXIES`): addresses and
/// CIDR ranges. None by default: then the client is the TCP peer, whatever the headers say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

impl FromStr for TrustedProxies {
    type Err = String;

    /// `10.0.0.0/8, 192.0.2.7, ::1`.
    fn from_str(list: &str) -> Result<TrustedProxies, String> {
        let mut networks = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (addr, prefix) = match item.split_once('/') {
                Some((addr, prefix)) => (addr, Some(prefix)),
                None => (item, None),
            };
            let addr: IpAddr =
                addr.parse().map_err(|_| format!("{item:?} is not an IP address or a CIDR range like 10.0.0.0/8"))?;
            let addr = addr.to_canonical();
            let most = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => most,
                Some(text) => text
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= most)
                    .ok_or_else(|| format!("{item:?}: the prefix length must be 0 to {most}"))?,
            };
            networks.push(Network { addr, prefix });
        }
        Ok(TrustedProxies(networks))
    }
}

impl TrustedProxies {
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|network| network.contains(ip))
    }

    /// The client's address: the TCP `peer`, unless the peer is a trusted proxy; then the
    /// `X-Forwarded-For` chain (`forwarded_for`: the header's values in order) is read from the
    /// right, past every trusted proxy, and the first address no trusted proxy vouches for is
    /// the client. Entries to its left were written by the client itself and are never read. An
    /// entry that is not an address ends the walk at the proxy that wrote it.
    pub fn client_address<'a>(&self, peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops: Vec<&str> = forwarded_for.into_iter().flat_map(|value| value.split(',')).collect();
        for hop in hops.iter().rev().map(|hop| hop.trim()) {
            let Some(addr) = parse_hop(hop) else { return client };
            client = addr.to_canonical();
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:443`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

/// Who a bucket (and a line of the refusal log) belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallerKey {
    /// A signed-in subject of one organisation. The server accepts tokens of one issuer
    /// (`VELFERD_JWT_ISSUER`), so (issuer, subject, organisation) is (subject, organisation).
    Subject { organisation: String, subject: String },
    /// An anonymous caller, or one whose token was refused: its client address (an IPv6
    /// address's /64).
    Address(IpAddr),
}

impl CallerKey {
    /// The key of `actor` calling from `address` (see [`TrustedProxies::client_address`]).
    pub fn of(actor: &Actor, address: IpAddr) -> CallerKey {
        match actor.principal() {
            Some(principal) => CallerKey::of_principal(principal),
            None => CallerKey::of_address(address),
        }
    }

    /// The key of a signed-in caller: what names its organisation and its subject. The one
    /// place that decides what identifies the organisation of a token.
    pub fn of_principal(principal: &Principal) -> CallerKey {
        CallerKey::Subject { organisation: principal.org.as_string(), subject: principal.subject.clone() }
    }

    /// The key of an anonymous caller at `address`: IPv6 addresses by their /64.
    pub fn of_address(address: IpAddr) -> CallerKey {
        CallerKey::Address(match address.to_canonical() {
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
            v4 => v4,
        })
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, CallerKey::Address(_))
    }

    /// How the refusal log names the caller: `org 974760673 sub alice`, `address 192.0.2.1` or
    /// `address 2001:db8::/64`. At most 200 characters (a subject is the token's to choose).
    pub fn describe(&self) -> String {
        let text = match self {
            CallerKey::Subject { organisation, subject } => format!("org {organisation} sub {subject}"),
            CallerKey::Address(IpAddr::V6(v6)) => format!("address {v6}/64"),
            CallerKey::Address(v4) => format!("address {v4}"),
        };
        text.chars().take(200).collect()
    }
}

/// What `extensions.cost.throttleStatus` reports: the caller's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleStatus {
    pub maximum_available: u32,
    pub currently_available: u32,
    pub restore_rate: u32,
}

/// Why an operation was not admitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refused {
    /// Too few points now; `wait` until there are enough.
    Throttled { status: ThrottleStatus, wait: Duration },
    /// The operation costs more than a full bucket holds: it can never run.
    OverCapacity { status: ThrottleStatus },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    available: f64,
    at: Instant,
}

impl Bucket {
    fn full(limits: BucketLimits, now: Instant) -> Bucket {
        Bucket { available: f64::from(limits.capacity), at: now }
    }

    /// Restores the points earned since it was last seen.
    fn refill(&mut self, limits: BucketLimits, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * f64::from(limits.restore_rate);
        self.available = (self.available + earned).min(f64::from(limits.capacity));
        self.at = self.at.max(now);
    }

    fn status(&self, limits: BucketLimits) -> ThrottleStatus {
        ThrottleStatus {
            maximum_available: limits.capacity,
            currently_available: self.available.max(0.0).floor() as u32,
            restore_rate: limits.restore_rate,
        }
    }
}

/// The buckets of one kind of caller.
struct Buckets {
    limits: BucketLimits,
    map: Mutex<BucketMap>,
}

struct BucketMap {
    buckets: HashMap<CallerKey, Bucket>,
    /// Shared by the callers that did not fit.
    overflow: Bucket,
    last_sweep: Option<Instant>,
}

impl Buckets {
    fn new(limits: BucketLimits, now: Instant) -> Buckets {
        let map = BucketMap { buckets: HashMap::new(), overflow: Bucket::full(limits, now), last_sweep: None };
        Buckets { limits, map: Mutex::new(map) }
    }

    /// Takes `cost` points from `key`'s bucket at `now`, or says why not (taking nothing).
    fn charge(&self, key: &CallerKey, cost: u64, now: Instant) -> Result<ThrottleStatus, Refused> {
        let limits = self.limits;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = map.bucket_mut(key, limits, now);
        bucket.refill(limits, now);
        let cost = cost as f64;
        if cost > f64::from(limits.capacity) {
            return Err(Refused::OverCapacity { status: bucket.status(limits) });
        }
        if bucket.available < cost {
            let wait = Duration::from_secs_f64((cost - bucket.available) / f64::from(limits.restore_rate));
            return Err(Refused::Throttled { status: bucket.status(limits), wait });
        }
        bucket.available -= cost;
        Ok(bucket.status(limits))
    }

    /// `key`'s bucket as it is at `now`, charging nothing and keeping no bucket for it.
    fn status(&self, key: &CallerKey, now: Instant) -> ThrottleStatus {
        let limits = self.limits;
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut bucket = match map.buckets.get(key) {
            Some(bucket) => *bucket,
            None if map.buckets.len() >= MAX_BUCKETS => map.overflow,
            None => Bucket::full(limits, now),
        };
        bucket.refill(limits, now);
        bucket.status(limits)
    }

    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).buckets.len()
    }
}

impl BucketMap {
    /// `key`'s bucket, made full when it has none; the overflow bucket when the map is full even
    /// after sweeping out the buckets that have filled up again.
    fn bucket_mut(&mut self, key: &CallerKey, limits: BucketLimits, now: Instant) -> &mut Bucket {
        if !self.buckets.contains_key(key) && self.buckets.len() >= MAX_BUCKETS {
            if self.last_sweep.is_none_or(|last| now.saturating_duration_since(last) >= SWEEP_INTERVAL) {
                self.last_sweep = Some(now);
                self.buckets.retain(|_, bucket| {
                    bucket.refill(limits, now);
                    bucket.available < f64::from(limits.capacity)
                });
            }
            if self.buckets.len() >= MAX_BUCKETS {
                return &mut self.overflow;
            }
        }
        self.buckets.entry(key.clone()).or_insert_with(|| Bucket::full(limits, now))
    }
}

/// Every caller's bucket on this instance.
pub struct Throttle {
    settings: ThrottleSettings,
    signed_in: Buckets,
    anonymous: Buckets,
}

impl Throttle {
    pub fn new(settings: ThrottleSettings) -> Throttle {
        let now = Instant::now();
        Throttle {
            signed_in: Buckets::new(settings.signed_in, now),
            anonymous: Buckets::new(settings.anonymous, now),
            settings,
        }
    }

    pub fn settings(&self) -> &ThrottleSettings {
        &self.settings
    }

    fn buckets(&self, key: &CallerKey) -> &Buckets {
        if key.is_anonymous() { &self.anonymous } else { &self.signed_in }
    }

    /// Takes `cost` points from `key`'s bucket, or says why not (taking nothing).
    pub fn charge(&self, key: &CallerKey, cost: u64) -> Result<ThrottleStatus, Refused> {
        self.buckets(key).charge(key, cost, Instant::now())
    }

    /// `key`'s bucket now, charging nothing.
    pub fn status(&self, key: &CallerKey) -> ThrottleStatus {
        self.buckets(key).status(key, Instant::now())
    }

    /// How many buckets this instance keeps (signed-in, anonymous).
    pub fn bucket_counts(&self) -> (usize, usize) {
        (self.signed_in.len(), self.anonymous.len())
    }
}

/// Whole seconds to wait, at least one: what `Retry-After` and `retryAfterSeconds` say.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BucketLimits = BucketLimits { capacity: 100, restore_rate: 10 };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn subject(name: &str) -> CallerKey {
        CallerKey::Subject { organisation: "974760673".into(), subject: name.into() }
    }

    #[test]
    fn a_bucket_drains_refuses_with_the_wait_and_refills_at_its_rate() {
        let start = Instant::now();
        let buckets = Buckets::new(LIMITS, start);
        let key = subject("alice");
        assert_eq!(buckets.charge(&key, 60, start).unwrap().currently_available, 40);
        match buckets.charge(&key, 60, start) {
            Err(Refused::Throttled { status, wait }) => {
                assert_eq!(status.currently_available, 40);
                assert_eq!(wait, Duration::from_secs(2), "20 points missing at 10 a second");
            }
            other => panic!("{other:?}"),
        }
        // A refusal takes nothing.
        assert_eq!(buckets.status(&key, start).currently_available, 40);
        let later = start + Duration::from_secs(2);
        assert_eq!(buckets.charge(&key, 60, later).unwrap().currently_available, 0);
        // Never more than the capacity, however long it rests.
        assert_eq!(buckets.status(&key, later + Duration::from_secs(3600)).currently_available, 100);
    }

    #[test]
    fn an_operation_over_the_capacity_can_never_run() {
        let now = Instant::now();
        let buckets = Buckets::new(LIMITS, now);
        assert!(matches!(buckets.charge(&subject("a"), 101, now), Err(Refused::OverCapacity { .. })));
        assert_eq!(buckets.status(&subject("a"), now).currently_available, 100);
    }

    #[test]
    fn callers_have_buckets_of_their_own() {
        let now = Instant::now();
        let buckets = Buckets::new(LIMITS, now);
        buckets.charge(&subject("alice"), 100, now).unwrap();
        assert_eq!(buckets.charge(&subject("bob"), 100, now).unwrap().currently_available, 0);
        let other_org = CallerKey::Subject { organisation: "923609016".into(), subject: "alice".into() };
        assert_eq!(buckets.status(&other_org, now).currently_available, 100);
    }

    #[test]
    fn a_full_map_sweeps_full_buckets_then_shares_an_overflow_bucket() {
        let now = Instant::now();
        let buckets = Buckets::new(LIMITS, now);
        for i in 0..MAX_BUCKETS as u32 {
            buckets.charge(&CallerKey::Address(IpAddr::V4(i.into())), 1, now).unwrap();
        }
        let stranger = CallerKey::Address(ip("203.0.113.9"));
        let another = CallerKey::Address(ip("203.0.113.10"));
        // Every bucket is in use: the newcomers share one.
        buckets.charge(&stranger, 60, now).unwrap();
        assert!(matches!(buckets.charge(&another, 60, now), Err(Refused::Throttled { .. })));
        assert_eq!(buckets.len(), MAX_BUCKETS);
        // Once the buckets have filled up again they are swept out and newcomers get their own.
        let later = now + Duration::from_secs(1);
        assert_eq!(buckets.charge(&another, 60, later).unwrap().currently_available, 40);
        assert_eq!(buckets.len(), 1);
    }

    #[test]
    fn anonymous_and_signed_in_callers_have_their_own_limits() {
        let throttle = Throttle::new(ThrottleSettings {
            signed_in: LIMITS,
            anonymous: BucketLimits { capacity: 10, restore_rate: 1 },
            trusted_proxies: TrustedProxies::default(),
        });
        assert_eq!(throttle.status(&subject("a")).maximum_available, 100);
        assert_eq!(throttle.status(&CallerKey::of_address(ip("192.0.2.1"))).maximum_available, 10);
    }

    #[test]
    fn ipv6_callers_count_by_their_64() {
        assert_eq!(CallerKey::of_address(ip("2001:db8:1:2:aaaa::1")), CallerKey::of_address(ip("2001:db8:1:2::ffff")));
        assert_ne!(CallerKey::of_address(ip("2001:db8:1:2::1")), CallerKey::of_address(ip("2001:db8:1:3::1")));
        assert_eq!(CallerKey::of_address(ip("::ffff:192.0.2.1")), CallerKey::of_address(ip("192.0.2.1")));
        assert_eq!(CallerKey::of_address(ip("2001:db8:1:2::1")).describe(), "address 2001:db8:1:2::/64");
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        assert_eq!(none.client_address(ip("198.51.100.1"), ["203.0.113.5"]), ip("198.51.100.1"));

        let proxies: TrustedProxies = "10.0.0.0/8, 192.0.2.7".parse().unwrap();
        // From an untrusted peer the header is the caller's own invention.
        assert_eq!(proxies.client_address(ip("198.51.100.1"), ["203.0.113.5"]), ip("198.51.100.1"));
        // From a trusted proxy: the rightmost address no trusted proxy vouches for.
        assert_eq!(proxies.client_address(ip("192.0.2.7"), ["203.0.113.5"]), ip("203.0.113.5"));
        assert_eq!(
            proxies.client_address(ip("10.1.1.1"), ["1.1.1.1, 203.0.113.5, 10.2.2.2", "10.3.3.3"]),
            ip("203.0.113.5"),
            "the spoofed 1.1.1.1 on the left is never read"
        );
        assert_eq!(proxies.client_address(ip("10.1.1.1"), ["[2001:db8::1]:443"]), ip("2001:db8::1"));
        // No header, or nothing but proxies: the last proxy seen.
        assert_eq!(proxies.client_address(ip("10.1.1.1"), []), ip("10.1.1.1"));
        assert_eq!(proxies.client_address(ip("10.1.1.1"), ["10.9.9.9"]), ip("10.9.9.9"));
        assert_eq!(proxies.client_address(ip("10.1.1.1"), ["garbage"]), ip("10.1.1.1"));
    }

    #[test]
    fn trusted_proxies_parse_addresses_and_ranges() {
        let proxies: TrustedProxies = " 10.0.0.0/8 ,::1, 2001:db8::/32,".parse().unwrap();
        assert!(proxies.trusts(ip("10.255.0.1")));
        assert!(proxies.trusts(ip("::ffff:10.0.0.1")));
        assert!(proxies.trusts(ip("::1")));
        assert!(proxies.trusts(ip("2001:db8:ffff::1")));
        assert!(!proxies.trusts(ip("11.0.0.1")));
        assert!(!proxies.trusts(ip("::2")));
        assert!("0.0.0.0/0".parse::<TrustedProxies>().unwrap().trusts(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "example.org", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
        assert_eq!("".parse::<TrustedProxies>().unwrap(), TrustedProxies::default());
    }
}
