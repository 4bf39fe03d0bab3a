//! When a delivery is tried again, and what an answer means (Standard Webhooks, "Deliverability
//! and reliability" and "Delivery success and failure"): a 2xx succeeds; 410 Gone disables the
//! endpoint; anything else — 3xx (redirects are not followed), 4xx, 5xx, a timeout, a refused
//! or failed connection — is retried on the schedule, with jitter, honouring `Retry-After` on
//! 429, 502, 503 and 504; when the schedule runs out the delivery has failed.

use std::time::Duration;

/// The spec's example schedule up to ten hours, then once more: immediately, 5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_SCHEDULE: &str = "0s,5s,5m,30m,2h,5h,10h,10h";

/// Longest delay one step may name (a week).
const MAX_STEP: Duration = Duration::from_secs(7 * 86_400);

/// Parses `0s,5s,5m` (humantime durations, comma-separated): the delay before each attempt,
/// the first counted from the event.
pub fn parse(text: &str) -> Result<Vec<Duration>, String> {
    let steps: Vec<Duration> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}")))
        .collect::<Result<_, _>>()?;
    if steps.is_empty() || steps.len() > 50 {
        return Err("give 1 to 50 delays, e.g. 0s,5s,5m,30m,2h,5h,10h,10h".into());
    }
    if let Some(long) = steps.iter().find(|d| **d > MAX_STEP) {
        return Err(format!("{long:?} is longer than a week"));
    }
    Ok(steps)
}

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    /// 410 Gone: the receiver wants nothing more; the endpoint is disabled.
    Gone,
    /// Try again after this long.
    RetryIn(Duration),
    /// The schedule ran out.
    Failed,
}

/// The verdict on an attempt that got `status` (none: no answer), after `made` attempts since
/// the delivery was (re)queued, on `schedule`. `retry_after` (already capped by the client) is
/// honoured on 429/502/503/504: the wait is at least that long. `jitter` in [-1, 1] moves the
/// scheduled delay by up to a fifth either way.
pub fn verdict(
    status: Option<u16>,
    retry_after: Option<Duration>,
    made: usize,
    schedule: &[Duration],
    jitter: f64,
) -> Verdict {
    match status {
        Some(200..=299) => return Verdict::Succeeded,
        Some(410) => return Verdict::Gone,
        _ => {}
    }
    let Some(step) = schedule.get(made) else { return Verdict::Failed };
    let jittered = step.mul_f64(1.0 + jitter.clamp(-1.0, 1.0) / 5.0);
    let wait = match (status, retry_after) {
        (Some(429 | 502 | 503 | 504), Some(asked)) => jittered.max(asked),
        _ => jittered,
    };
    Verdict::RetryIn(wait)
}

/// A number in [-1, 1], different on every call: jitter needs no secrecy.
pub fn jitter() -> f64 {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let hash = std::collections::hash_map::RandomState::new().hash_one(nanos);
    (hash as f64 / u64::MAX as f64) * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Vec<Duration> {
        parse(DEFAULT_SCHEDULE).unwrap()
    }

    #[test]
    fn the_default_is_the_specs_schedule() {
        let s: Vec<u64> = spec().iter().map(Duration::as_secs).collect();
        assert_eq!(s, [0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000]);
        assert_eq!(parse("10ms, 20ms").unwrap(), [Duration::from_millis(10), Duration::from_millis(20)]);
        for bad in ["", "5x", "8d", "1s,,nope"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_judged_as_the_spec_says() {
        let s = spec();
        assert_eq!(verdict(Some(200), None, 1, &s, 0.0), Verdict::Succeeded);
        assert_eq!(verdict(Some(204), None, 8, &s, 0.0), Verdict::Succeeded);
        assert_eq!(verdict(Some(410), None, 1, &s, 0.0), Verdict::Gone);
        // After the first attempt (made = 1) the next waits 5 s; 3xx is a failure.
        assert_eq!(verdict(Some(302), None, 1, &s, 0.0), Verdict::RetryIn(Duration::from_secs(5)));
        assert_eq!(verdict(None, None, 2, &s, 0.0), Verdict::RetryIn(Duration::from_secs(300)));
        assert_eq!(verdict(Some(500), None, 8, &s, 0.0), Verdict::Failed);
    }

    #[test]
    fn retry_after_is_honoured_only_where_the_spec_names_it() {
        let s = spec();
        let asked = Some(Duration::from_secs(60));
        for status in [429, 502, 503, 504] {
            assert_eq!(verdict(Some(status), asked, 1, &s, 0.0), Verdict::RetryIn(Duration::from_secs(60)));
        }
        assert_eq!(verdict(Some(500), asked, 1, &s, 0.0), Verdict::RetryIn(Duration::from_secs(5)));
        // Never sooner than the schedule.
        assert_eq!(verdict(Some(503), asked, 3, &s, 0.0), Verdict::RetryIn(Duration::from_secs(1800)));
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        let s = spec();
        for j in [-1.0, -0.3, 0.0, 0.7, 1.0, 5.0] {
            let Verdict::RetryIn(wait) = verdict(None, None, 2, &s, j) else { panic!() };
            assert!((240..=360).contains(&wait.as_secs()), "{wait:?}");
        }
        for _ in 0..100 {
            assert!((-1.0..=1.0).contains(&jitter()));
        }
    }
}
