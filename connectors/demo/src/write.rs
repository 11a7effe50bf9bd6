//! CSV output for the generator: one writer per table, fields formatted without
//! allocation (the 1 000 000-deal set writes tens of millions of fields).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::DemoError;

/// Moscow is UTC+3 all year (since 2014): local wall-clock time in the demo's zone.
pub const OFFSET_SECS: i64 = 3 * 3600;

/// A CSV file being written with the canonical header of its table.
pub struct TableWriter {
    path: PathBuf,
    csv: csv::Writer<BufWriter<File>>,
    int: itoa::Buffer,
    scratch: String,
    pub rows: u64,
}

impl TableWriter {
    pub fn create(dir: &Path, table: &str) -> Result<Self, DemoError> {
        let path = dir.join(format!("{table}.csv"));
        let file = File::create(&path).map_err(|e| DemoError::io(&path, e))?;
        let mut csv = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(BufWriter::with_capacity(1 << 20, file));
        let columns = svodka_schema::table(table)
            .expect("generator writes canonical tables")
            .columns;
        csv.write_record(columns.iter().map(|c| c.name))
            .map_err(|e| DemoError::csv(&path, e))?;
        Ok(TableWriter {
            path,
            csv,
            int: itoa::Buffer::new(),
            scratch: String::with_capacity(32),
            rows: 0,
        })
    }

    pub fn text(&mut self, v: &str) -> &mut Self {
        let _ = self.csv.write_field(v);
        self
    }

    pub fn opt_text(&mut self, v: Option<&str>) -> &mut Self {
        self.text(v.unwrap_or(""))
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        let s = self.int.format(v);
        let _ = self.csv.write_field(s);
        self
    }

    pub fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int(v),
            None => self.text(""),
        }
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.text(if v { "true" } else { "false" })
    }

    /// Kopecks as `123.45`.
    pub fn money(&mut self, kopecks: i64) -> &mut Self {
        self.scratch.clear();
        if kopecks < 0 {
            self.scratch.push('-');
        }
        let abs = kopecks.unsigned_abs();
        self.scratch.push_str(self.int.format(abs / 100));
        self.scratch.push('.');
        let cents = abs % 100;
        self.scratch.push(char::from(b'0' + (cents / 10) as u8));
        self.scratch.push(char::from(b'0' + (cents % 10) as u8));
        let _ = self.csv.write_field(&self.scratch);
        self
    }

    pub fn opt_money(&mut self, kopecks: Option<i64>) -> &mut Self {
        match kopecks {
            Some(v) => self.money(v),
            None => self.text(""),
        }
    }

    /// A float with up to 3 decimals.
    pub fn float(&mut self, v: f64) -> &mut Self {
        self.scratch.clear();
        use std::fmt::Write;
        let _ = write!(self.scratch, "{:.3}", v);
        let _ = self.csv.write_field(&self.scratch);
        self
    }

    /// UTC seconds as Moscow local time with its offset: `2025-03-05T12:34:56+03:00`.
    pub fn ts(&mut self, utc_secs: i64) -> &mut Self {
        self.scratch.clear();
        format_ts(&mut self.scratch, utc_secs);
        let _ = self.csv.write_field(&self.scratch);
        self
    }

    pub fn opt_ts(&mut self, utc_secs: Option<i64>) -> &mut Self {
        match utc_secs {
            Some(v) => self.ts(v),
            None => self.text(""),
        }
    }

    /// Days since the epoch as `YYYY-MM-DD`.
    pub fn date(&mut self, days: i64) -> &mut Self {
        self.scratch.clear();
        format_date(&mut self.scratch, days);
        let _ = self.csv.write_field(&self.scratch);
        self
    }

    pub fn end(&mut self) -> Result<(), DemoError> {
        self.rows += 1;
        self.csv
            .write_record(None::<&[u8]>)
            .map_err(|e| DemoError::csv(&self.path, e))
    }

    pub fn finish(mut self) -> Result<u64, DemoError> {
        use std::io::Write;
        self.csv.flush().map_err(|e| DemoError::io(&self.path, e))?;
        let inner = self
            .csv
            .into_inner()
            .map_err(|e| DemoError::io(&self.path, e.into_error()))?;
        inner
            .into_inner()
            .map_err(|e| DemoError::io(&self.path, e.into_error()))?
            .sync_all()
            .map_err(|e| DemoError::io(&self.path, e))?;
        let _ = std::io::sink().flush();
        Ok(self.rows)
    }
}

/// (year, month, day) of days since 1970-01-01 (Howard Hinnant's civil_from_days).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn push2(s: &mut String, v: u32) {
    s.push(char::from(b'0' + (v / 10) as u8));
    s.push(char::from(b'0' + (v % 10) as u8));
}

fn format_date(s: &mut String, days: i64) {
    let (y, m, d) = civil(days);
    let y = y as u32;
    push2(s, y / 100);
    push2(s, y % 100);
    s.push('-');
    push2(s, m);
    s.push('-');
    push2(s, d);
}

fn format_ts(s: &mut String, utc_secs: i64) {
    let local = utc_secs + OFFSET_SECS;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400) as u32;
    format_date(s, days);
    s.push('T');
    push2(s, secs / 3600);
    s.push(':');
    push2(s, secs / 60 % 60);
    s.push(':');
    push2(s, secs % 60);
    s.push_str("+03:00");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-1, 0, 59, 60, 19_782, 20_000, 20_513] {
            let (y, m, d) = civil(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil(19_782), (2024, 2, 29));
    }

    #[test]
    fn timestamps_in_moscow() {
        let mut s = String::new();
        // 2024-03-05T09:34:56Z
        format_ts(&mut s, 1_709_631_296);
        assert_eq!(s, "2024-03-05T12:34:56+03:00");
    }
}
