//! The one "now" of a run, a sync and the service: the system clock, or a moment pinned
//! with `--now` / `SVODKA_NOW`, so that tests and reproducible runs never see the wall clock.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use crate::DatasetInfo;

/// Where "now" comes from. Everything that needs the current moment or day (the default
/// period, a sync's retention cut-off, a snapshot's date, a page's time of generation)
/// asks a `Clock` handed to it, never the system directly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    /// The machine's clock.
    #[default]
    System,
    /// A fixed moment.
    Fixed(DateTime<Utc>),
}

impl Clock {
    /// The environment variable that pins the clock of every command (as `--now` does).
    pub const ENV: &'static str = "SVODKA_NOW";

    /// A pinned clock from text: an RFC 3339 moment (`2026-11-27T12:00:00+03:00`) or a
    /// day (`2026-11-27`), read as that day's noon in UTC — the same calendar day in
    /// every zone from UTC−11 to UTC+11.
    pub fn parse(text: &str) -> Result<Clock, String> {
        let text = text.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(Clock::Fixed(t.with_timezone(&Utc)));
        }
        if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            let noon = day.and_hms_opt(12, 0, 0).expect("noon exists");
            return Ok(Clock::Fixed(Utc.from_utc_datetime(&noon)));
        }
        Err(format!(
            "expected a moment like 2026-11-27T12:00:00+03:00 or a day like 2026-11-27, got {text:?}"
        ))
    }

    /// The moment now.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => *t,
        }
    }

    /// Seconds since the Unix epoch, with fractions.
    pub fn unix(&self) -> f64 {
        self.now().timestamp_micros() as f64 / 1e6
    }

    /// Today's date in time zone `tz`.
    pub fn today<Z: TimeZone>(&self, tz: &Z) -> NaiveDate {
        self.now().with_timezone(tz).date_naive()
    }

    /// The "today" of reports on a data set: the day it was extracted when it says so,
    /// else today in `tz` — so a report on the same data gives the same numbers any day.
    pub fn data_today<Z: TimeZone>(&self, info: Option<&DatasetInfo>, tz: &Z) -> NaiveDate {
        match info {
            Some(i) => i.snapshot_date,
            None => self.today(tz),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_clock_reads_moments_and_days() {
        let c = Clock::parse("2026-11-27T01:30:00+03:00").unwrap();
        assert_eq!(c.now().to_rfc3339(), "2026-11-26T22:30:00+00:00");
        assert_eq!(
            c.today(&chrono::FixedOffset::east_opt(3 * 3600).unwrap()),
            NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
        );
        assert_eq!(
            c.today(&Utc),
            NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
        );
        let day = Clock::parse("2026-11-27").unwrap();
        for hours in [-11, 0, 11] {
            let tz = chrono::FixedOffset::east_opt(hours * 3600).unwrap();
            assert_eq!(
                day.today(&tz),
                NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
            );
        }
        assert_eq!(day.unix(), 1_795_780_800.0);
        let err = Clock::parse("27.11.2026").unwrap_err();
        assert!(err.contains("2026-11-27T12:00:00+03:00"), "{err}");
    }

    #[test]
    fn a_data_set_date_wins_over_the_clock() {
        let info = DatasetInfo {
            name: "x".into(),
            timezone: "UTC".into(),
            portal_url: None,
            snapshot_date: NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
            origin: None,
            links: Default::default(),
        };
        let c = Clock::parse("2026-11-27").unwrap();
        assert_eq!(c.data_today(Some(&info), &Utc), info.snapshot_date);
        assert_eq!(c.data_today(None, &Utc), c.today(&Utc));
    }
}
