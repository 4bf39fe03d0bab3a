//! Named failpoints for the crash test (issue 16; docs/performance.md, "Crash safety"): a
//! `velferd serve` started with `VELFERD_FAILPOINT=after_commit:5` aborts itself the fifth time
//! it reaches `after_commit`, as a crash would: no destructor runs, nothing is flushed, no reply
//! goes out. Testing only; production refuses the setting (config.rs).
//!
//! Not the `fail` crate (tikv fail-rs): its points exist only when its `failpoints` feature is
//! compiled in, which only the tests would ask for, while `cargo test` and `cargo run` share one
//! build (`.ci/same-build`); its actions include no abort (a panic is caught by the ingest
//! writer's `catch_unwind` and answered 503, which is not a crash); and it accepts names no
//! point carries, so a typo tests nothing. Here a point costs one relaxed atomic load when no
//! failpoint is set.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// A place in the code where a process may be made to die.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Point {
    /// The adapter decoded a request's messages; nothing of them is written.
    AfterDecode = 1,
    /// An ingest transaction committed; the requests in it are not answered yet.
    AfterCommit = 2,
    /// An ingest reply is built and about to be written.
    BeforeReply = 3,
    /// A webhook endpoint accepted a delivery (2xx); it is not recorded as delivered yet.
    AfterDelivery = 4,
}

impl Point {
    pub const ALL: [Point; 4] = [Point::AfterDecode, Point::AfterCommit, Point::BeforeReply, Point::AfterDelivery];

    pub fn name(self) -> &'static str {
        match self {
            Point::AfterDecode => "after_decode",
            Point::AfterCommit => "after_commit",
            Point::BeforeReply => "before_reply",
            Point::AfterDelivery => "after_delivery",
        }
    }
}

/// `point:n`: abort the process the `n`-th time (from 1) `point` is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failpoint {
    pub point: Point,
    pub at: u64,
}

impl FromStr for Failpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Failpoint, String> {
        let (name, at) = text.split_once(':').unwrap_or((text, "1"));
        let (name, at) = (name.trim(), at.trim());
        let point = Point::ALL.into_iter().find(|p| p.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Point::ALL.iter().map(|p| p.name()).collect();
            format!("unknown failpoint {name:?}; the points are {}", known.join(", "))
        })?;
        let at = at.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            format!("{at:?} is not a count from 1 (`{name}:N` aborts the N-th time the point is reached)")
        })?;
        Ok(Failpoint { point, at })
    }
}

impl fmt::Display for Failpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.point.name(), self.at)
    }
}

/// The armed point (0: none) and how many more times it may be reached before the last.
struct Armed {
    point: AtomicU8,
    left: AtomicU64,
}

impl Armed {
    const fn off() -> Armed {
        Armed { point: AtomicU8::new(0), left: AtomicU64::new(0) }
    }

    fn set(&self, failpoint: Failpoint) {
        self.left.store(failpoint.at, Ordering::Relaxed);
        self.point.store(failpoint.point as u8, Ordering::Relaxed);
    }

    /// True the `at`-th time `point` is reached, and never again.
    #[inline]
    fn reached(&self, point: Point) -> bool {
        self.point.load(Ordering::Relaxed) == point as u8 && self.count_down()
    }

    #[cold]
    #[inline(never)]
    fn count_down(&self) -> bool {
        self.left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)) == Ok(1)
    }
}

static ARMED: Armed = Armed::off();

/// Arms `failpoint` in this process; `velferd serve` does at start, before it serves (never the
/// in-process test servers, which share the test binary).
pub fn arm(failpoint: Failpoint) {
    ARMED.set(failpoint);
    tracing::warn!(%failpoint, "VELFERD_FAILPOINT is set: the process aborts when the point is reached (testing only)");
}

/// Marks `point`: aborts the process if this is the armed point's fatal hit.
#[inline]
pub fn hit(point: Point) {
    if ARMED.reached(point) {
        die(point);
    }
}

#[cold]
#[inline(never)]
fn die(point: Point) -> ! {
    // stderr is unbuffered: the line is out before the abort, and nothing else is flushed.
    eprintln!("failpoint {} reached: aborting", point.name());
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failpoint_names_a_known_point_and_a_count_from_one() {
        let parsed = |text: &str| text.parse::<Failpoint>();
        assert_eq!(parsed("after_commit:5"), Ok(Failpoint { point: Point::AfterCommit, at: 5 }));
        assert_eq!(parsed(" before_reply "), Ok(Failpoint { point: Point::BeforeReply, at: 1 }));
        for point in Point::ALL {
            let failpoint = Failpoint { point, at: 3 };
            assert_eq!(parsed(&failpoint.to_string()), Ok(failpoint));
        }
        let unknown = parsed("after_lunch:2").unwrap_err();
        assert!(unknown.contains("\"after_lunch\"") && unknown.contains("after_decode, after_commit"), "{unknown}");
        for bad in ["after_decode:0", "after_decode:-1", "after_decode:x", "after_decode:"] {
            assert!(parsed(bad).unwrap_err().contains("not a count from 1"), "{bad}");
        }
    }

    #[test]
    fn an_armed_point_fires_at_its_count_once_and_other_points_never() {
        let armed = Armed::off();
        assert!(!Point::ALL.into_iter().any(|p| armed.reached(p)), "nothing armed, nothing fires");
        armed.set(Failpoint { point: Point::AfterCommit, at: 3 });
        let fired: Vec<bool> = (0..6).map(|_| armed.reached(Point::AfterCommit)).collect();
        assert_eq!(fired, [false, false, true, false, false, false]);
        assert!(!armed.reached(Point::AfterDecode) && !armed.reached(Point::BeforeReply));
    }
}
