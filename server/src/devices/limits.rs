//! What one product's traffic may cost the platform: a rate limit on the messages its supplier
//! sends (governor's GCRA, kept in memory, so per server instance) and a quota on the bytes its
//! rejected messages keep as unresolved dead letters (a counter on the product in the database,
//! kept by the transactions that store and resolve dead letters, so shared by all instances). Both answer `429 Too Many Requests` with `Retry-After`: the sender keeps the
//! message and tries again, nothing is dropped silently. Each refusal is logged as a warning and
//! remembered per product, so the platform operator sees it on the product
//! (`DeviceProduct.ingestLimits`): an undecodable alarm refused at the door is still an alarm
//! somebody must look into.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The limits a server applies to every product's ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimitSettings {
    /// Messages per second a product may send, sustained.
    pub rate_per_second: u32,
    /// Messages a product may send at once above the rate.
    pub burst: u32,
    /// Bytes of unresolved dead letters a product may keep.
    pub dead_letter_quota_bytes: u64,
}

/// Why a product's message was refused at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestRefusal {
    RateLimited,
    DeadLetterQuota,
}

impl IngestRefusal {
    pub fn code(self) -> &'static str {
        match self {
            IngestRefusal::RateLimited => "INGEST_RATE_LIMITED",
            IngestRefusal::DeadLetterQuota => "DEAD_LETTER_QUOTA_EXCEEDED",
        }
    }
}

/// The last refusal of one product, for the platform operator.
#[derive(Debug, Clone, Copy)]
pub struct LastRefusal {
    pub at: DateTime<Utc>,
    pub refusal: IngestRefusal,
}

pub struct IngestLimits {
    pub settings: IngestLimitSettings,
    rate: DefaultKeyedRateLimiter<i64>,
    clock: DefaultClock,
    refused: Mutex<HashMap<i64, LastRefusal>>,
}

impl IngestLimits {
    pub fn new(settings: IngestLimitSettings) -> IngestLimits {
        let rate = NonZeroU32::new(settings.rate_per_second.max(1)).expect("at least 1");
        let burst = NonZeroU32::new(settings.burst.max(1)).expect("at least 1");
        IngestLimits {
            settings,
            rate: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// Admits `messages` messages of product `product_id` now, or says how long to wait. A
    /// request larger than the burst can never pass: it waits as long as the burst takes to
    /// refill, so the sender splits it.
    pub fn admit(&self, product_id: i64, messages: usize) -> Result<(), Duration> {
        let n = NonZeroU32::new(u32::try_from(messages).unwrap_or(u32::MAX).max(1)).expect("at least 1");
        match self.rate.check_key_n(&product_id, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                self.record(product_id, IngestRefusal::RateLimited);
                Err(not_until.wait_time_from(self.clock.now()))
            }
            Err(_) => {
                self.record(product_id, IngestRefusal::RateLimited);
                Err(Duration::from_secs_f64(f64::from(self.settings.burst) / f64::from(self.settings.rate_per_second)))
            }
        }
    }

    /// Remembers a refusal of `product_id`'s traffic and logs it.
    pub fn record(&self, product_id: i64, refusal: IngestRefusal) {
        tracing::warn!(product = product_id, code = refusal.code(), "ingest refused a product's message");
        self.refused.lock().expect("not poisoned").insert(product_id, LastRefusal { at: Utc::now(), refusal });
    }

    /// The last refusal of `product_id`'s traffic on this server instance.
    pub fn last_refusal(&self, product_id: i64) -> Option<LastRefusal> {
        self.refused.lock().expect("not poisoned").get(&product_id).copied()
    }
}

/// Seconds for a `Retry-After` header: whole seconds, at least one.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, burst: u32) -> IngestLimits {
        IngestLimits::new(IngestLimitSettings { rate_per_second: rate, burst, dead_letter_quota_bytes: 1 })
    }

    #[test]
    fn a_product_may_send_its_burst_then_waits_while_another_product_goes_on() {
        let limits = limits(1, 3);
        assert_eq!(limits.admit(1, 3), Ok(()));
        let wait = limits.admit(1, 1).expect_err("over the burst");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(limits.admit(2, 3), Ok(()), "products have buckets of their own");
        assert_eq!(limits.last_refusal(1).map(|r| r.refusal), Some(IngestRefusal::RateLimited));
        assert!(limits.last_refusal(2).is_none());
    }

    #[test]
    fn a_request_larger_than_the_burst_is_refused_with_the_time_the_burst_takes() {
        assert_eq!(limits(10, 20).admit(1, 21), Err(Duration::from_secs(2)));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
    }
}
