//! The arithmetic of the measured indicators, over plain values: no database, no GraphQL, so
//! each rule is tested on its own. `report.rs` loads the rows and hands them here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};

// ---- dose adherence ----

/// What a dose event says about its scheduled dose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoseReport {
    /// Taken out of the dispenser at the event's time; `unassisted` when the device says the
    /// recipient took it alone (unknown assistance is not unassisted).
    Dispensed { unassisted: bool },
    /// Missed, blocked because the dispenser was empty, or not confirmed: a miss.
    Miss,
}

/// One stored dose event with the schedule the device reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoseEvent {
    pub device: i64,
    pub scheduled_for: DateTime<Utc>,
    pub occurred_at: DateTime<Utc>,
    pub report: DoseReport,
}

/// One scheduled dose — one (device, scheduled-for) — and what became of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledDose {
    pub device: i64,
    pub scheduled_for: DateTime<Utc>,
    /// Dispensed within the window of its scheduled time.
    pub on_time: bool,
    /// Dispensed within the window, by the recipient alone.
    pub unassisted_on_time: bool,
}

/// Whether a dose dispensed at `at` was on time: at most `window` before or after its
/// scheduled time, both edges included.
pub fn within_window(scheduled_for: DateTime<Utc>, at: DateTime<Utc>, window: Duration) -> bool {
    (at - scheduled_for).abs() <= window
}

/// The scheduled doses the events speak of, one per (device, scheduled-for) however many events
/// name it: on time when any of its events is a dispense within the window; a missed, blocked
/// or unconfirmed dose, and one dispensed outside the window, is a miss.
pub fn scheduled_doses(events: &[DoseEvent], window: Duration) -> Vec<ScheduledDose> {
    let mut doses: BTreeMap<(i64, DateTime<Utc>), ScheduledDose> = BTreeMap::new();
    for e in events {
        let dose = doses.entry((e.device, e.scheduled_for)).or_insert(ScheduledDose {
            device: e.device,
            scheduled_for: e.scheduled_for,
            on_time: false,
            unassisted_on_time: false,
        });
        if let DoseReport::Dispensed { unassisted } = e.report
            && within_window(e.scheduled_for, e.occurred_at, window)
        {
            dose.on_time = true;
            dose.unassisted_on_time |= unassisted;
        }
    }
    doses.into_values().collect()
}

/// Doses of one cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DoseTally {
    pub scheduled: u64,
    pub on_time: u64,
    /// Unassisted on-time dispenses: the home visits the dispenser replaced.
    pub unassisted_on_time: u64,
}

impl DoseTally {
    pub fn add(&mut self, dose: &ScheduledDose) {
        self.scheduled += 1;
        self.on_time += u64::from(dose.on_time);
        self.unassisted_on_time += u64::from(dose.unassisted_on_time);
    }

    /// Doses on time ÷ doses scheduled.
    pub fn adherence(&self) -> Option<Ratio> {
        Ratio::new(self.on_time, self.scheduled)
    }

    /// Home visits replaced × the municipality's minutes per visit.
    pub fn minutes_freed(&self, minutes_per_visit: Option<u32>) -> Option<u64> {
        minutes_per_visit.map(|m| self.unassisted_on_time * u64::from(m))
    }
}

// ---- alarm answer times ----

/// One counted safety alarm: when it was raised and when the response centre first
/// acknowledged it (none: never answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmCall {
    pub raised_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
}

/// Whether an alarm counts: one the device cancelled before anyone answered it is not a call
/// that waited for an answer (the recipient pressed by mistake and reset it).
pub fn alarm_counts(cancelled_by_device: bool, acknowledged: bool) -> bool {
    !cancelled_by_device || acknowledged
}

/// The `p`th percentile (0 < p ≤ 100) by the nearest-rank method: the value at rank
/// ⌈p/100 × n⌉ of the values in ascending order — always a value that occurred; the median is
/// the 50th. None for no values.
pub fn nearest_rank(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (u64::from(p) * n).div_ceil(100).clamp(1, n);
    Some(sorted[(rank - 1) as usize])
}

/// Answer times of one cell, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerTimes {
    /// Every counted alarm's answer time; `None` for an alarm never acknowledged.
    pub millis: Vec<Option<i64>>,
}

/// What [`AnswerTimes`] comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerStats {
    pub counted: u64,
    pub answered: u64,
    /// Over the answered alarms, nearest rank.
    pub median_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    /// Over every counted alarm: one never answered is not answered within any limit.
    pub within_60s: Option<Ratio>,
    pub within_180s: Option<Ratio>,
}

impl AnswerTimes {
    pub fn add(&mut self, call: &AlarmCall) {
        self.millis.push(call.acknowledged_at.map(|a| (a - call.raised_at).num_milliseconds().max(0)));
    }

    pub fn stats(&self) -> AnswerStats {
        let mut answered: Vec<i64> = self.millis.iter().flatten().copied().collect();
        answered.sort_unstable();
        let counted = self.millis.len() as u64;
        let within = |limit_ms: i64| Ratio::new(answered.iter().filter(|&&ms| ms <= limit_ms).count() as u64, counted);
        AnswerStats {
            counted,
            answered: answered.len() as u64,
            median_ms: nearest_rank(&answered, 50),
            p90_ms: nearest_rank(&answered, 90),
            within_60s: within(60_000),
            within_180s: within(180_000),
        }
    }
}

// ---- devices online ----

/// A half-open span of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Span {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Span {
        Span { start, end }
    }

    fn seconds(self) -> i64 {
        (self.end - self.start).num_seconds().max(0)
    }

    fn clip(self, to: Span) -> Option<Span> {
        let span = Span { start: self.start.max(to.start), end: self.end.min(to.end) };
        (span.start < span.end).then_some(span)
    }
}

/// Overlapping or touching spans merged, in order.
pub fn merged(mut spans: Vec<Span>) -> Vec<Span> {
    spans.retain(|s| s.start < s.end);
    spans.sort();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    out
}

/// Seconds of `period` a device was in service, and of those the seconds it was not offline:
/// each offline span counts only where it overlaps the period and the service, so an outage
/// across a month boundary counts in each month for its part there.
pub fn online_seconds(service: &[Span], offline: &[Span], period: Span) -> (i64, i64) {
    let service: Vec<Span> = merged(service.iter().filter_map(|s| s.clip(period)).collect());
    let offline = merged(offline.to_vec());
    let in_service: i64 = service.iter().map(|s| s.seconds()).sum();
    let dark: i64 =
        service.iter().flat_map(|s| offline.iter().filter_map(move |o| o.clip(*s))).map(|s| s.seconds()).sum();
    (in_service, in_service - dark)
}

/// Device time of one cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OnlineTally {
    pub devices: u64,
    pub in_service_seconds: i64,
    pub online_seconds: i64,
}

impl OnlineTally {
    pub fn add(&mut self, in_service: i64, online: i64) {
        self.devices += 1;
        self.in_service_seconds += in_service;
        self.online_seconds += online;
    }

    /// Time-weighted: Σ online seconds ÷ Σ in-service seconds.
    pub fn share(&self) -> Option<Ratio> {
        Ratio::new(self.online_seconds.max(0) as u64, self.in_service_seconds.max(0) as u64)
    }
}

// ---- shares ----

/// A share, kept as its two counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    pub numerator: u64,
    pub denominator: u64,
}

impl Ratio {
    /// None for a denominator of zero: no share of nothing.
    pub fn new(numerator: u64, denominator: u64) -> Option<Ratio> {
        (denominator > 0).then_some(Ratio { numerator, denominator })
    }

    /// The share as a decimal with four decimals, rounded half up: `0.3333`, `1.0000`.
    pub fn decimal(&self) -> String {
        let (n, d) = (u128::from(self.numerator), u128::from(self.denominator));
        let e4 = (n * 20_000 + d) / (2 * d);
        format!("{}.{:04}", e4 / 10_000, e4 % 10_000)
    }
}

/// Milliseconds as seconds, shortest: `45`, `45.5`.
pub fn seconds(ms: i64) -> String {
    super::values::Quantity::from_e4(ms * 10).to_string()
}

// ---- disclosure control ----

/// Why a cell's figures are withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, async_graphql::Enum)]
pub enum Suppression {
    /// It covers fewer recipients than the threshold.
    BelowThreshold,
    /// It covers enough, but with the total and the other visible cells it would give away a
    /// cell below the threshold.
    Complementary,
}

impl Suppression {
    /// Its name in the API (and the CSV export).
    pub fn code(self) -> &'static str {
        api_name(self)
    }
}

/// An enum value's name as GraphQL spells it, so the CSV export says what the API says.
pub fn api_name<T: async_graphql::resolver_utils::EnumType + PartialEq + Copy>(value: T) -> &'static str {
    T::items().iter().find(|item| item.value == value).map_or("", |item| item.name)
}

/// Suppression of one group — the supplier cells of one municipality, month and indicator,
/// and their total — given the recipients each covers (the total covers their union):
///
/// 1. **Primary:** a cell covering fewer than `threshold` recipients is suppressed.
/// 2. **Secondary:** while the total is shown, the suppressed supplier cells can be recovered
///    together as the total less the shown cells. So while one supplier cell alone is
///    suppressed, or the suppressed ones together cover fewer than `threshold` recipients, the
///    shown supplier cell covering the fewest recipients (then the lowest supplier id) is
///    suppressed too; when no supplier cell is left to suppress, the total is.
///
/// The total stays shown where it can: it is the figure a municipality reports.
pub fn suppress(
    suppliers: &BTreeMap<i64, BTreeSet<i64>>,
    threshold: usize,
) -> (HashMap<i64, Suppression>, Option<Suppression>) {
    let total: BTreeSet<i64> = suppliers.values().flatten().copied().collect();
    let mut hidden: HashMap<i64, Suppression> =
        suppliers.iter().filter(|(_, r)| r.len() < threshold).map(|(s, _)| (*s, Suppression::BelowThreshold)).collect();
    if total.len() < threshold {
        return (hidden, Some(Suppression::BelowThreshold));
    }
    loop {
        if hidden.is_empty() {
            return (hidden, None);
        }
        let recoverable: BTreeSet<i64> =
            hidden.keys().flat_map(|s| suppliers[s].iter().copied()).collect::<BTreeSet<_>>();
        if hidden.len() >= 2 && recoverable.len() >= threshold {
            return (hidden, None);
        }
        let next = suppliers.iter().filter(|(s, _)| !hidden.contains_key(s)).min_by_key(|(s, r)| (r.len(), **s));
        match next {
            Some((s, _)) => {
                hidden.insert(*s, Suppression::Complementary);
            }
            None => return (hidden, Some(Suppression::Complementary)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn dispensed(device: i64, scheduled: &str, at: &str, unassisted: bool) -> DoseEvent {
        DoseEvent {
            device,
            scheduled_for: utc(scheduled),
            occurred_at: utc(at),
            report: DoseReport::Dispensed { unassisted },
        }
    }

    #[test]
    fn the_window_includes_both_edges_and_nothing_beyond() {
        let hour = Duration::minutes(60);
        let s = utc("2026-09-10T06:00:00Z");
        assert!(within_window(s, utc("2026-09-10T07:00:00Z"), hour));
        assert!(within_window(s, utc("2026-09-10T05:00:00Z"), hour));
        assert!(!within_window(s, utc("2026-09-10T07:00:01Z"), hour));
        assert!(!within_window(s, utc("2026-09-10T04:59:59Z"), hour));
    }

    #[test]
    fn a_scheduled_dose_counts_once_and_is_on_time_only_by_a_dispense_in_the_window() {
        let hour = Duration::minutes(60);
        let events = [
            // The same dose reported twice (a re-sent event under a new id): one dose.
            dispensed(1, "2026-09-10T06:00:00Z", "2026-09-10T06:20:00Z", true),
            dispensed(1, "2026-09-10T06:00:00Z", "2026-09-10T06:25:00Z", true),
            // Missed, then taken 61 minutes late: a miss.
            DoseEvent {
                device: 2,
                scheduled_for: utc("2026-09-11T06:00:00Z"),
                occurred_at: utc("2026-09-11T06:30:00Z"),
                report: DoseReport::Miss,
            },
            dispensed(2, "2026-09-11T06:00:00Z", "2026-09-11T07:01:00Z", true),
            // Taken on time with help: on time, no visit replaced.
            dispensed(3, "2026-09-14T06:00:00Z", "2026-09-14T07:00:00Z", false),
        ];
        let doses = scheduled_doses(&events, hour);
        let mut tally = DoseTally::default();
        doses.iter().for_each(|d| tally.add(d));
        assert_eq!(tally, DoseTally { scheduled: 3, on_time: 2, unassisted_on_time: 1 });
        assert_eq!(tally.adherence().unwrap().decimal(), "0.6667");
        assert_eq!(tally.minutes_freed(Some(20)), Some(20));
        assert_eq!(tally.minutes_freed(None), None);
    }

    #[test]
    fn percentiles_are_nearest_rank_values_that_occurred() {
        // n = 6: the median is rank ⌈3⌉ = 3, the 90th percentile rank ⌈5.4⌉ = 6.
        let v = [20, 30, 45, 60, 90, 200];
        assert_eq!(nearest_rank(&v, 50), Some(45));
        assert_eq!(nearest_rank(&v, 90), Some(200));
        // n = 10: rank 5 and rank 9.
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!((nearest_rank(&v, 50), nearest_rank(&v, 90)), (Some(5), Some(9)));
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        assert_eq!(nearest_rank(&[], 50), None);
    }

    #[test]
    fn answer_shares_count_unanswered_alarms_as_late_and_cancelled_ones_not_at_all() {
        let raised = utc("2026-10-15T10:00:00Z");
        let mut times = AnswerTimes::default();
        for secs in [Some(60), Some(61), Some(180), None] {
            times.add(&AlarmCall { raised_at: raised, acknowledged_at: secs.map(|s| raised + Duration::seconds(s)) });
        }
        let stats = times.stats();
        assert_eq!((stats.counted, stats.answered), (4, 3));
        assert_eq!(stats.within_60s.unwrap().decimal(), "0.2500");
        assert_eq!(stats.within_180s.unwrap().decimal(), "0.7500");
        assert_eq!((stats.median_ms, stats.p90_ms), (Some(61_000), Some(180_000)));
        assert!(!alarm_counts(true, false), "cancelled at the device before an answer");
        assert!(alarm_counts(true, true), "cancelled after it was answered");
        assert!(alarm_counts(false, false), "never answered");
    }

    #[test]
    fn an_outage_across_a_month_boundary_counts_in_each_month_for_its_part() {
        let service = [Span::new(utc("2026-08-01T00:00:00Z"), utc("2027-01-01T00:00:00Z"))];
        // Offline 20:00 UTC 30 September to 01:00 UTC 1 October; Oslo's October starts 22:00 UTC.
        let offline = [Span::new(utc("2026-09-30T20:00:00Z"), utc("2026-10-01T01:00:00Z"))];
        let september = Span::new(utc("2026-08-31T22:00:00Z"), utc("2026-09-30T22:00:00Z"));
        let october = Span::new(utc("2026-09-30T22:00:00Z"), utc("2026-10-31T23:00:00Z"));
        assert_eq!(online_seconds(&service, &offline, september), (2_592_000, 2_592_000 - 7_200));
        assert_eq!(online_seconds(&service, &offline, october), (2_682_000, 2_682_000 - 10_800));
        // Out of service for the second half of the outage: only the first half counts.
        let until = [Span::new(utc("2026-08-01T00:00:00Z"), utc("2026-09-30T21:00:00Z"))];
        assert_eq!(online_seconds(&until, &offline, september), (2_588_400, 2_588_400 - 3_600));
        // Overlapping outages (an offline event and the sweep's alert) count once.
        let twice = [offline[0], Span::new(utc("2026-09-30T23:00:00Z"), utc("2026-10-01T02:00:00Z"))];
        assert_eq!(online_seconds(&service, &twice, october), (2_682_000, 2_682_000 - 14_400));
        let mut tally = OnlineTally::default();
        tally.add(2_682_000, 2_682_000 - 10_800);
        tally.add(2_682_000, 2_682_000);
        assert_eq!(tally.share().unwrap().decimal(), "0.9980");
    }

    #[test]
    fn shares_round_half_up_to_four_decimals() {
        assert_eq!(Ratio::new(1, 3).unwrap().decimal(), "0.3333");
        assert_eq!(Ratio::new(2, 3).unwrap().decimal(), "0.6667");
        assert_eq!(Ratio::new(1, 8).unwrap().decimal(), "0.1250");
        assert_eq!(Ratio::new(1, 20_000).unwrap().decimal(), "0.0001");
        assert_eq!(Ratio::new(5, 5).unwrap().decimal(), "1.0000");
        assert_eq!(Ratio::new(1, 0), None);
        assert_eq!(seconds(45_500), "45.5");
        assert_eq!(seconds(200_000), "200");
    }

    fn group(cells: &[(i64, std::ops::Range<i64>)]) -> BTreeMap<i64, BTreeSet<i64>> {
        cells.iter().map(|(s, r)| (*s, r.clone().collect())).collect()
    }

    #[test]
    fn one_small_cell_takes_the_next_smallest_with_it_and_the_total_stays() {
        // Supplier 1: 5 recipients, supplier 2: 2. The total (7) stays; hiding only supplier 2
        // would let total − supplier 1 give it away, so supplier 1 goes too.
        let (hidden, total) = suppress(&group(&[(1, 0..5), (2, 5..7)]), 5);
        assert_eq!(hidden, HashMap::from([(2, Suppression::BelowThreshold), (1, Suppression::Complementary)]));
        assert_eq!(total, None);
        // Three suppliers: the smallest shown one (5 recipients, not the 6) goes.
        let (hidden, total) = suppress(&group(&[(1, 0..5), (2, 5..7), (3, 7..13)]), 5);
        assert_eq!(hidden, HashMap::from([(2, Suppression::BelowThreshold), (1, Suppression::Complementary)]));
        assert_eq!(total, None);
    }

    #[test]
    fn small_cells_that_together_stay_small_take_more_with_them() {
        // Suppliers 2 and 3 have 2 each: together 4 < 5, recoverable as total − supplier 1.
        let (hidden, total) = suppress(&group(&[(1, 0..10), (2, 10..12), (3, 12..14)]), 5);
        assert_eq!(hidden.get(&1), Some(&Suppression::Complementary));
        assert_eq!(total, None);
        // Together 6 ≥ 5: nothing more.
        let (hidden, _) = suppress(&group(&[(1, 0..10), (2, 10..13), (3, 13..16)]), 5);
        assert_eq!(hidden.get(&1), None);
        // A recipient with devices of two suppliers counts once in the union.
        let cells: BTreeMap<i64, BTreeSet<i64>> =
            BTreeMap::from([(1, (0..6).collect()), (2, BTreeSet::from([0, 1])), (3, BTreeSet::from([1, 2]))]);
        let (hidden, _) = suppress(&cells, 5);
        assert_eq!(hidden.get(&1), Some(&Suppression::Complementary), "2 and 3 together cover 3 recipients");
    }

    #[test]
    fn the_csv_names_suppression_and_indicators_as_the_api_does() {
        assert_eq!(Suppression::BelowThreshold.code(), "BELOW_THRESHOLD");
        assert_eq!(Suppression::Complementary.code(), "COMPLEMENTARY");
        use crate::benefits::report::Indicator;
        let names: Vec<&str> =
            [Indicator::Medication, Indicator::AlarmAnswer, Indicator::DevicesOnline].map(Indicator::code).to_vec();
        assert_eq!(names, ["MEDICATION", "ALARM_ANSWER", "DEVICES_ONLINE"]);
    }

    #[test]
    fn a_lone_supplier_below_the_threshold_hides_the_total_too() {
        let (hidden, total) = suppress(&group(&[(1, 0..4)]), 5);
        assert_eq!(hidden, HashMap::from([(1, Suppression::BelowThreshold)]));
        assert_eq!(total, Some(Suppression::BelowThreshold));
        // Enough everywhere: nothing hidden.
        let (hidden, total) = suppress(&group(&[(1, 0..5), (2, 5..10)]), 5);
        assert!(hidden.is_empty() && total.is_none());
    }
}
