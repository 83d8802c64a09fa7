//! Date formatting without a time-zone database: the static files' `Last-Modified`
//! (`%a, %e %b %Y %H:%M:%S GMT`, with the original's space-padded day) and the log
//! timestamp (`ctime` style, local time through libc).
//!
//! Uses: nothing internal.

use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `Wed,  6 Aug 2014 22:21:35 GMT`
pub fn format_e(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{}, {:>2} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m as usize).saturating_sub(1).min(11)],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `Mon Nov 23 02:18:55 2026` in local time, as Perl's `localtime` prints it.
pub fn ctime_local(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as libc::time_t);
    // SAFETY: localtime_r only writes into the tm we own; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return format_e(t);
    }
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[((tm.tm_wday + 3).rem_euclid(7)) as usize],
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        i64::from(tm.tm_year) + 1900
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn space_padded_day() {
        // 2014-08-06 22:21:35 UTC
        let t = UNIX_EPOCH + Duration::from_secs(1_407_363_695);
        assert_eq!(format_e(t), "Wed,  6 Aug 2014 22:21:35 GMT");
        let t = UNIX_EPOCH + Duration::from_secs(2_130_706_432);
        assert_eq!(format_e(t), "Wed,  8 Jul 2037 22:53:52 GMT");
        assert_eq!(format_e(UNIX_EPOCH), "Thu,  1 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn ctime_shape() {
        let s = ctime_local(SystemTime::now());
        assert_eq!(s.len(), 24, "{s}");
    }
}
