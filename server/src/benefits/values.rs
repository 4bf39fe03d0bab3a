//! The values of benefits realisation, parsed at the edge: decimal quantities, calendar months,
//! and Europe/Oslo's calendar.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};

use crate::errors::Invalid;

/// A decimal value of an entered indicator (a count, hours, kroner, a percentage …): at most
/// four decimals and twelve whole digits, kept as whole ten-thousandths so it is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i64);

/// Ten-thousandths in one.
const SCALE: i64 = 10_000;
/// 10^12 in ten-thousandths: more than any municipal figure.
const MAX_E4: i64 = 1_000_000_000_000 * SCALE;

impl Quantity {
    pub fn from_e4(e4: i64) -> Quantity {
        Quantity(e4)
    }

    pub fn e4(self) -> i64 {
        self.0
    }

    /// `-12`, `12.5`, `0,25` (a comma works as the decimal mark too); `INVALID_DECIMAL` on
    /// `field` otherwise.
    pub fn parse(field: &'static str, text: &str) -> Result<Quantity, Invalid> {
        let bad = || {
            Invalid::new(
                field,
                "INVALID_DECIMAL",
                format!("{field} must be a decimal number with at most 4 decimals and 12 whole digits, like \"12.5\""),
            )
        };
        let text = text.trim().replace(',', ".");
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() || whole.len() > 12 || fraction.len() > 4 {
            return Err(bad());
        }
        if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let whole: i64 = whole.parse().map_err(|_| bad())?;
        let fraction: i64 =
            if fraction.is_empty() { 0 } else { format!("{fraction:0<4}").parse().map_err(|_| bad())? };
        let e4 = whole * SCALE + fraction;
        if e4 > MAX_E4 {
            return Err(bad());
        }
        Ok(Quantity(if negative { -e4 } else { e4 }))
    }
}

/// The shortest decimal: `12.5`, `-3`, `0.0625`.
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (whole, fraction) = (abs / SCALE as u64, abs % SCALE as u64);
        if fraction == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let fraction = format!("{fraction:04}");
            write!(f, "{sign}{whole}.{}", fraction.trim_end_matches('0'))
        }
    }
}

/// A calendar month, `YYYY-MM`, from 2000 to 2100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    pub year: i32,
    pub month: u32,
}

impl YearMonth {
    pub fn new(year: i32, month: u32) -> Option<YearMonth> {
        ((2000..=2100).contains(&year) && (1..=12).contains(&month)).then_some(YearMonth { year, month })
    }

    /// `YYYY-MM`; `INVALID_MONTH` on `field` otherwise.
    pub fn parse(field: &'static str, text: &str) -> Result<YearMonth, Invalid> {
        let bad =
            || Invalid::new(field, "INVALID_MONTH", format!("{field} must be a month YYYY-MM from 2000-01 to 2100-12"));
        let (y, m) = text.trim().split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        YearMonth::new(y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?).ok_or_else(bad)
    }

    pub fn next(self) -> YearMonth {
        if self.month == 12 {
            YearMonth { year: self.year + 1, month: 1 }
        } else {
            YearMonth { year: self.year, month: self.month + 1 }
        }
    }

    /// Months from `self` to `last`, both included (none when `last` is earlier).
    pub fn through(self, last: YearMonth) -> Vec<YearMonth> {
        let mut months = Vec::new();
        let mut m = self;
        while m <= last {
            months.push(m);
            m = m.next();
        }
        months
    }

    /// The month's first instant in Europe/Oslo, in UTC.
    pub fn start(self) -> DateTime<Utc> {
        oslo::month_start(self.year, self.month)
    }

    /// The next month's first instant in Europe/Oslo, in UTC.
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }

    /// The Europe/Oslo month an instant falls in.
    pub fn of(at: DateTime<Utc>) -> YearMonth {
        let local = at + oslo::offset(at);
        YearMonth { year: local.year(), month: local.month() }
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Europe/Oslo's calendar, written out rather than taken from a time-zone database: Norway has
/// kept the EU's summer-time rule since 1996 (UTC+1, and UTC+2 from the last Sunday of March at
/// 01:00 UTC to the last Sunday of October at 01:00 UTC), which is all the months this area
/// handles (2000 onwards) need. Tested against known switch instants below.
pub mod oslo {
    use super::*;

    fn last_sunday(year: i32, month: u32) -> NaiveDate {
        let next = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)
        };
        let mut day = next.expect("a valid month").pred_opt().expect("not the first day ever");
        while day.weekday() != Weekday::Sun {
            day = day.pred_opt().expect("a Sunday within a week");
        }
        day
    }

    fn switch(year: i32, month: u32) -> DateTime<Utc> {
        Utc.from_utc_datetime(&last_sunday(year, month).and_hms_opt(1, 0, 0).expect("01:00 exists"))
    }

    /// Oslo's offset from UTC at `at`.
    pub fn offset(at: DateTime<Utc>) -> Duration {
        let year = at.year();
        if at >= switch(year, 3) && at < switch(year, 10) { Duration::hours(2) } else { Duration::hours(1) }
    }

    /// Local midnight on the first of the month, in UTC. No switch happens on a first (they
    /// fall on the last Sunday of March and October, at night), so summer time holds from April
    /// to October and standard time the other months.
    pub fn month_start(year: i32, month: u32) -> DateTime<Utc> {
        let midnight =
            NaiveDate::from_ymd_opt(year, month, 1).expect("a valid month").and_hms_opt(0, 0, 0).expect("midnight");
        let offset = if (4..=10).contains(&month) { Duration::hours(2) } else { Duration::hours(1) };
        Utc.from_utc_datetime(&midnight) - offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn quantities_parse_exactly_and_print_shortest() {
        for (text, e4, shown) in
            [("12", 120_000, "12"), ("12.5", 125_000, "12.5"), ("0,0625", 625, "0.0625"), ("-3.10", -31_000, "-3.1")]
        {
            let q = Quantity::parse("value", text).unwrap();
            assert_eq!((q.e4(), q.to_string().as_str()), (e4, shown), "{text}");
        }
        for bad in ["", "1.23456", "abc", "1e5", "1.2.3", "1234567890123", "--1", "+1", "."] {
            assert_eq!(Quantity::parse("value", bad).unwrap_err().code, "INVALID_DECIMAL", "{bad:?}");
        }
    }

    #[test]
    fn months_parse_and_refuse_what_is_not_one() {
        assert_eq!(YearMonth::parse("from", "2026-09").unwrap(), YearMonth { year: 2026, month: 9 });
        for bad in ["2026-13", "2026-9", "26-09", "1999-12", "2026/09", ""] {
            assert_eq!(YearMonth::parse("from", bad).unwrap_err().code, "INVALID_MONTH", "{bad:?}");
        }
        let months = YearMonth::new(2026, 11).unwrap().through(YearMonth::new(2027, 2).unwrap());
        assert_eq!(
            months.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["2026-11", "2026-12", "2027-01", "2027-02"]
        );
    }

    #[test]
    fn oslo_months_start_at_local_midnight_in_summer_and_winter_time() {
        // 1 October 2026 00:00 CEST (UTC+2); 1 November 2026 00:00 CET (UTC+1).
        assert_eq!(YearMonth::new(2026, 10).unwrap().start(), utc("2026-09-30T22:00:00Z"));
        assert_eq!(YearMonth::new(2026, 10).unwrap().end(), utc("2026-10-31T23:00:00Z"));
        // October 2026 has 31 days and the hour summer time gives back: 2 682 000 s.
        let october = YearMonth::new(2026, 10).unwrap();
        assert_eq!((october.end() - october.start()).num_seconds(), 31 * 86_400 + 3_600);
        // 1 January 2027 00:00 CET.
        assert_eq!(YearMonth::new(2027, 1).unwrap().start(), utc("2026-12-31T23:00:00Z"));
    }

    #[test]
    fn an_instant_falls_in_its_oslo_month_across_the_switches() {
        // 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC.
        assert_eq!(oslo::offset(utc("2026-03-29T00:59:59Z")), Duration::hours(1));
        assert_eq!(oslo::offset(utc("2026-03-29T01:00:00Z")), Duration::hours(2));
        assert_eq!(oslo::offset(utc("2026-10-25T00:59:59Z")), Duration::hours(2));
        assert_eq!(oslo::offset(utc("2026-10-25T01:00:00Z")), Duration::hours(1));
        // 22:30 UTC on 30 September is 00:30 on 1 October in Oslo.
        assert_eq!(YearMonth::of(utc("2026-09-30T22:30:00Z")).to_string(), "2026-10");
        assert_eq!(YearMonth::of(utc("2026-09-30T21:59:59Z")).to_string(), "2026-09");
        assert_eq!(YearMonth::of(utc("2026-12-31T23:00:00Z")).to_string(), "2027-01");
    }
}
