//! Calendar arithmetic in the client's time zone: where a day starts, which day an
//! instant falls on. Timestamps are stored in UTC; days are always the client's days.

use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone};
use chrono_tz::Tz;

const MICROS_PER_SECOND: i64 = 1_000_000;

pub use svodka_schema::values::{date_from_days, days_since_epoch, month_end, month_start};

/// The UTC instant (µs) at which `date` begins in `tz`. Where midnight does not exist
/// (a DST gap), the day begins at the first instant that does.
pub fn day_start_micros(date: NaiveDate, tz: Tz) -> i64 {
    let naive = date.and_time(NaiveTime::MIN);
    let mut probe = naive;
    // A gap is at most a few hours; step forward until the local time exists.
    for _ in 0..48 {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.timestamp_micros();
        }
        probe += chrono::Duration::minutes(30);
    }
    tz.from_utc_datetime(&naive).timestamp_micros()
}

/// The local date in `tz` of UTC instant `micros`.
pub fn local_date(micros: i64, tz: Tz) -> NaiveDate {
    let secs = micros.div_euclid(MICROS_PER_SECOND);
    let nanos = (micros.rem_euclid(MICROS_PER_SECOND) * 1000) as u32;
    let utc = chrono::DateTime::from_timestamp(secs, nanos).unwrap_or_default();
    utc.with_timezone(&tz).date_naive()
}

/// Local date as Date32 days, remembering each UTC day's offset: offsets change a few
/// times a year, while the values of a column spread over hundreds of days, so a column's
/// values look up each day's offset once instead of each value its own.
pub struct LocalDays {
    tz: Tz,
    /// Direct-mapped by UTC day: the day and its offset (µs) where the offset holds for
    /// the whole day; allocated on first use.
    known: Vec<(i64, i64)>,
}

/// How many UTC days `LocalDays` remembers: three years of values fit with few clashes.
const KNOWN_DAYS: usize = 1024;

impl LocalDays {
    pub fn new(tz: Tz) -> Self {
        LocalDays {
            tz,
            known: Vec::new(),
        }
    }

    pub fn days(&mut self, micros: i64) -> i32 {
        let day = 86_400 * MICROS_PER_SECOND;
        let utc_day = micros.div_euclid(day);
        if self.known.is_empty() {
            self.known = vec![(i64::MIN, 0); KNOWN_DAYS];
        }
        let slot = utc_day.rem_euclid(KNOWN_DAYS as i64) as usize;
        let offset = match self.known[slot] {
            (d, offset) if d == utc_day => offset,
            _ => {
                // The offset holds for the whole UTC day when it is the same at both ends:
                // transitions happen at most once or twice a day in any real zone, so a
                // day that agrees at both ends cannot contain one and come back.
                let lo = utc_day * day;
                let first = self.offset_micros(lo);
                if self.offset_micros(lo.saturating_add(day - 1)) == first {
                    self.known[slot] = (utc_day, first);
                    first
                } else {
                    self.offset_micros(micros)
                }
            }
        };
        (micros + offset).div_euclid(day) as i32
    }

    fn offset_micros(&self, micros: i64) -> i64 {
        use chrono::Offset;
        let secs = micros.div_euclid(MICROS_PER_SECOND);
        let utc = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
        i64::from(
            self.tz
                .offset_from_utc_datetime(&utc.naive_utc())
                .fix()
                .local_minus_utc(),
        ) * MICROS_PER_SECOND
    }
}

/// Calendar periods a time dimension groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Grain {
    pub const NAMES: &'static [&'static str] = &["day", "week", "month", "quarter", "year"];

    pub fn parse(name: &str) -> Option<Grain> {
        Some(match name {
            "day" => Grain::Day,
            "week" => Grain::Week,
            "month" => Grain::Month,
            "quarter" => Grain::Quarter,
            "year" => Grain::Year,
            _ => return None,
        })
    }

    /// The first day of the period containing `date` (weeks start on Monday).
    pub fn start(self, date: NaiveDate) -> NaiveDate {
        match self {
            Grain::Day => date,
            Grain::Week => {
                date - chrono::Duration::days(i64::from(date.weekday().num_days_from_monday()))
            }
            Grain::Month => month_start(date),
            Grain::Quarter => {
                NaiveDate::from_ymd_opt(date.year(), (date.month() - 1) / 3 * 3 + 1, 1)
                    .expect("valid quarter")
            }
            Grain::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1).expect("valid year"),
        }
    }

    /// The first day of the next period after the one starting at `start`.
    pub fn next(self, start: NaiveDate) -> NaiveDate {
        let months = |n: u32| {
            start
                .checked_add_months(chrono::Months::new(n))
                .expect("in range")
        };
        match self {
            Grain::Day => start + chrono::Duration::days(1),
            Grain::Week => start + chrono::Duration::days(7),
            Grain::Month => months(1),
            Grain::Quarter => months(3),
            Grain::Year => months(12),
        }
    }

    /// The starts of every period that overlaps `from..=to`.
    pub fn periods(self, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
        let mut out = Vec::new();
        let mut p = self.start(from);
        while p <= to {
            out.push(p);
            p = self.next(p);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moscow_midnight_is_21_utc() {
        let d = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let start = day_start_micros(d, chrono_tz::Europe::Moscow);
        // 2024-02-29T21:00:00Z
        assert_eq!(start, 1_709_240_400_000_000);
        assert_eq!(local_date(start, chrono_tz::Europe::Moscow), d);
        assert_eq!(
            local_date(start - 1, chrono_tz::Europe::Moscow),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
        );
    }

    #[test]
    fn dst_gap_day_starts_at_first_existing_instant() {
        // Havana skips midnight → 01:00 on DST start (2024-03-10).
        let d = NaiveDate::from_ymd_opt(2024, 3, 10).unwrap();
        let tz = chrono_tz::America::Havana;
        let start = day_start_micros(d, tz);
        assert_eq!(local_date(start, tz), d);
        assert_eq!(local_date(start - 1, tz), d.pred_opt().unwrap());
    }

    #[test]
    fn cached_local_days_agree_with_direct_conversion_across_dst() {
        let tz = chrono_tz::Europe::Berlin;
        let mut cached = LocalDays::new(tz);
        let start = day_start_micros(NaiveDate::from_ymd_opt(2024, 3, 29).unwrap(), tz);
        // Every 17 minutes over five days around the spring-forward transition.
        for i in 0..(5 * 24 * 60 / 17) {
            let t = start + i * 17 * 60 * MICROS_PER_SECOND;
            assert_eq!(date_from_days(cached.days(t)), local_date(t, tz), "at {t}");
        }
    }

    #[test]
    fn remembered_days_agree_with_direct_conversion_in_any_order() {
        let tz = chrono_tz::America::New_York;
        let mut cached = LocalDays::new(tz);
        let start = day_start_micros(NaiveDate::from_ymd_opt(2021, 1, 1).unwrap(), tz);
        let hour = 3600 * MICROS_PER_SECOND;
        // Five years jumping back and forth by 1 024 days and a few hours: days that share
        // a remembered slot, and the days of every transition, in no particular order.
        let mut t = start;
        for i in 0..5_000i64 {
            t = start + (i * 7_919 % 1_826) * 24 * hour + (i * 5 % 24) * hour;
            assert_eq!(date_from_days(cached.days(t)), local_date(t, tz), "at {t}");
            let far = t + 1_024 * 24 * hour;
            assert_eq!(
                date_from_days(cached.days(far)),
                local_date(far, tz),
                "at {far}"
            );
        }
        assert!(t > start);
    }

    #[test]
    fn grains() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(Grain::Week.start(d("2024-03-07")), d("2024-03-04"));
        assert_eq!(Grain::Quarter.start(d("2024-08-31")), d("2024-07-01"));
        assert_eq!(
            Grain::Quarter.periods(d("2024-02-10"), d("2024-07-01")),
            vec![d("2024-01-01"), d("2024-04-01"), d("2024-07-01")]
        );
        assert_eq!(
            Grain::Month.periods(d("2024-01-31"), d("2024-03-01")).len(),
            3
        );
        assert_eq!(Grain::Year.next(d("2024-01-01")), d("2025-01-01"));
    }

    #[test]
    fn month_edges() {
        let d = NaiveDate::from_ymd_opt(2024, 2, 10).unwrap();
        assert_eq!(month_start(d), NaiveDate::from_ymd_opt(2024, 2, 1).unwrap());
        assert_eq!(month_end(d), NaiveDate::from_ymd_opt(2024, 2, 29).unwrap());
        let d = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap();
        assert_eq!(month_end(d), d);
    }
}
