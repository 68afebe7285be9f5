//! The date behind a template's `strftime_now(fmt)`, and a `strftime` for it.
//!
//! HF's `strftime_now` calls Python's `datetime.now().strftime(fmt)`, which on Linux hands the
//! format to glibc's `strftime` in the C locale. aether-core may not read the clock (it panics on
//! wasm32), so the caller supplies the moment as a [`DateTime`]: a civil date and time in
//! whatever zone it wants shown (Python uses local time; a server may prefer UTC). The
//! conversions use the proleptic Gregorian calendar (days since 1970-01-01 computed by counting
//! 400-year eras), as Python's `datetime` does.

use crate::error::{Error, Result};

/// A civil date and time, as `strftime_now` shows it. Always valid: built by [`DateTime::new`]
/// (checked) or [`DateTime::from_unix_seconds`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    year: i32,
    month: u8, // 1..=12
    day: u8,   // 1..=days_in_month
    hour: u8,  // 0..=23
    minute: u8,
    second: u8,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given civil date. Years are shifted to start in March so the
/// leap day falls at the end of the shifted year; an era is 400 years = 146097 days.
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = (i64::from(month) + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146097 + doe - 719468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl DateTime {
    /// A checked civil date and time (`month` 1-12, `day` within the month, 24-hour clock).
    pub fn new(year: i32, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Result<DateTime> {
        let ok = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(i64::from(year), month)
            && hour < 24
            && minute < 60
            && second < 60;
        if !ok {
            return Err(Error::InvalidDate { year, month, day, hour, minute, second });
        }
        Ok(DateTime { year, month, day, hour, minute, second })
    }

    /// The UTC civil time `secs` seconds after 1970-01-01T00:00:00Z. Instants whose year does not
    /// fit an i32 saturate to the first or last representable second.
    pub fn from_unix_seconds(secs: i64) -> DateTime {
        let days = secs.div_euclid(86400);
        let rem = secs.rem_euclid(86400);
        let (year, month, day) = civil_from_days(days);
        let Ok(year) = i32::try_from(year) else {
            return if year < 0 {
                DateTime { year: i32::MIN, month: 1, day: 1, hour: 0, minute: 0, second: 0 }
            } else {
                DateTime { year: i32::MAX, month: 12, day: 31, hour: 23, minute: 59, second: 59 }
            };
        };
        DateTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// Seconds since 1970-01-01T00:00:00 of this civil time read as UTC.
    pub fn unix_seconds(&self) -> i64 {
        days_from_civil(i64::from(self.year), self.month, self.day) * 86400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// 0 = Sunday … 6 = Saturday (1970-01-01 was a Thursday).
    fn weekday(&self) -> usize {
        (days_from_civil(i64::from(self.year), self.month, self.day) + 4).rem_euclid(7) as usize
    }

    /// 1 = January 1st.
    fn day_of_year(&self) -> i64 {
        let y = i64::from(self.year);
        days_from_civil(y, self.month, self.day) - days_from_civil(y, 1, 1) + 1
    }

    /// Formats like glibc `strftime` in the C locale, for the directives chat templates use:
    /// `%a %A %b %h %B %c %C %d %D %e %F %H %I %j %k %l %m %M %n %p %P %r %R %S %t %T %u %w %x %X
    /// %y %Y %%`, with glibc's `-` flag (no padding) on the numeric ones. `%Z` and `%z` print
    /// nothing, as for Python's naive `datetime.now()`. Anything else (unknown directives, a lone
    /// trailing `%`) is copied through unchanged, as glibc does.
    pub fn strftime(&self, fmt: &str) -> String {
        let mut out = String::with_capacity(fmt.len() + 16);
        let mut chars = fmt.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let Some(mut spec) = chars.next() else {
                out.push('%');
                break;
            };
            let pad = spec != '-';
            if !pad {
                let Some(next) = chars.next() else {
                    out.push_str("%-");
                    break;
                };
                spec = next;
            }
            // Numeric field, zero-padded to `width` unless the `-` flag was given.
            let num = |out: &mut String, v: i64, width: usize| {
                if pad {
                    out.push_str(&format!("{v:0width$}"));
                } else {
                    out.push_str(&v.to_string());
                }
            };
            let hour12 = match self.hour % 12 {
                0 => 12,
                h => h,
            };
            let (y, mo, d) = (i64::from(self.year), i64::from(self.month), i64::from(self.day));
            let (h, mi, s) = (i64::from(self.hour), i64::from(self.minute), i64::from(self.second));
            let month = MONTHS[usize::from(self.month - 1)];
            let weekday = WEEKDAYS[self.weekday()];
            match spec {
                'a' => out.push_str(&weekday[..3]),
                'A' => out.push_str(weekday),
                'b' | 'h' => out.push_str(&month[..3]),
                'B' => out.push_str(month),
                'c' => out.push_str(&format!(
                    "{} {} {:>2} {h:02}:{mi:02}:{s:02} {y}",
                    &weekday[..3],
                    &month[..3],
                    d
                )),
                'C' => num(&mut out, y.div_euclid(100), 2),
                'd' => num(&mut out, d, 2),
                'D' => out.push_str(&format!("{mo:02}/{d:02}/{:02}", y.rem_euclid(100))),
                'e' if pad => out.push_str(&format!("{d:>2}")),
                'e' => num(&mut out, d, 2),
                'F' => out.push_str(&format!("{y}-{mo:02}-{d:02}")),
                'H' => num(&mut out, h, 2),
                'I' => num(&mut out, i64::from(hour12), 2),
                'j' => num(&mut out, self.day_of_year(), 3),
                'k' if pad => out.push_str(&format!("{h:>2}")),
                'k' => num(&mut out, h, 2),
                'l' if pad => out.push_str(&format!("{hour12:>2}")),
                'l' => num(&mut out, i64::from(hour12), 2),
                'm' => num(&mut out, mo, 2),
                'M' => num(&mut out, mi, 2),
                'n' => out.push('\n'),
                'p' => out.push_str(if self.hour < 12 { "AM" } else { "PM" }),
                'P' => out.push_str(if self.hour < 12 { "am" } else { "pm" }),
                'r' => out.push_str(&format!(
                    "{hour12:02}:{mi:02}:{s:02} {}",
                    if self.hour < 12 { "AM" } else { "PM" }
                )),
                'R' => out.push_str(&format!("{h:02}:{mi:02}")),
                'S' => num(&mut out, s, 2),
                't' => out.push('\t'),
                'T' | 'X' => out.push_str(&format!("{h:02}:{mi:02}:{s:02}")),
                'u' => out.push_str(&(if self.weekday() == 0 { 7 } else { self.weekday() }).to_string()),
                'w' => out.push_str(&self.weekday().to_string()),
                'x' => out.push_str(&format!("{mo:02}/{d:02}/{:02}", y.rem_euclid(100))),
                'y' => num(&mut out, y.rem_euclid(100), 2),
                'Y' => out.push_str(&y.to_string()),
                'Z' | 'z' => {}
                '%' => out.push('%'),
                other => {
                    out.push_str(if pad { "%" } else { "%-" });
                    out.push(other);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_round_trip() {
        // 2024-07-26T14:30:05Z, a Friday; leap days; pre-1970; far years.
        let cases = [
            (1_722_004_205, (2024, 7, 26, 14, 30, 5)),
            (0, (1970, 1, 1, 0, 0, 0)),
            (951_782_400, (2000, 2, 29, 0, 0, 0)),
            (-1, (1969, 12, 31, 23, 59, 59)),
            (253_402_300_799, (9999, 12, 31, 23, 59, 59)),
            (-62_135_596_800, (1, 1, 1, 0, 0, 0)),
        ];
        for (secs, (y, mo, d, h, mi, s)) in cases {
            let want = DateTime::new(y, mo, d, h, mi, s).unwrap();
            assert_eq!(DateTime::from_unix_seconds(secs), want, "from_unix_seconds({secs})");
            assert_eq!(want.unix_seconds(), secs, "unix_seconds of {want:?}");
        }
    }

    #[test]
    fn new_rejects_impossible_dates() {
        for (y, mo, d, h) in
            [(2023, 2, 29, 0), (2024, 13, 1, 0), (2024, 4, 31, 0), (2024, 1, 0, 0), (2024, 1, 1, 24)]
        {
            let got = DateTime::new(y, mo, d, h, 0, 0);
            assert!(matches!(got, Err(Error::InvalidDate { .. })), "{y}-{mo}-{d} {h}h gave {got:?}");
        }
        assert!(DateTime::new(2024, 2, 29, 23, 59, 59).is_ok());
    }

    #[test]
    fn strftime_matches_glibc_c_locale() {
        // Expected strings are what Python 3.11 on glibc prints for
        // datetime(2024, 7, 26, 14, 30, 5).strftime(fmt) and datetime(2025, 3, 9, 9, 5, 7).
        let fri = DateTime::new(2024, 7, 26, 14, 30, 5).unwrap();
        let sun = DateTime::new(2025, 3, 9, 9, 5, 7).unwrap();
        let cases = [
            (fri, "%d %b %Y", "26 Jul 2024"),
            (fri, "%Y-%m-%d", "2024-07-26"),
            (fri, "%B %d, %Y", "July 26, 2024"),
            (fri, "%A %a %j %u %w %p %I", "Friday Fri 208 5 5 PM 02"),
            (
                fri,
                "%c|%x|%X|%D|%F|%T|%R",
                "Fri Jul 26 14:30:05 2024|07/26/24|14:30:05|07/26/24|2024-07-26|14:30:05|14:30",
            ),
            (fri, "%C %y %e %%%Z%z", "20 24 26 %"),
            (sun, "%d %b %Y", "09 Mar 2025"),
            (sun, "%-d %-m %-H:%M %e|%A %u %w %j %p", "9 3 9:05  9|Sunday 7 0 068 AM"),
            (sun, "%c", "Sun Mar  9 09:05:07 2025"),
            (fri, "%k|%l|%P|%r", "14| 2|pm|02:30:05 PM"),
            // glibc copies what it does not know through unchanged.
            (fri, "abc %", "abc %"),
            (fri, "%-", "%-"),
            (fri, "%-Q x", "%-Q x"),
            (fri, "%Q", "%Q"),
        ];
        for (dt, fmt, want) in cases {
            assert_eq!(dt.strftime(fmt), want, "strftime({fmt:?}) of {dt:?}");
        }
    }
}
