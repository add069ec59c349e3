//! Time formatting as AIDE prints it (`2026-11-29 00:59:24 +0000`), in the local time zone.

use std::time::{SystemTime, UNIX_EPOCH};

/// Converts days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `strftime("%Y-%m-%d %H:%M:%S %z")` of `secs` in a zone `offset` seconds east of UTC.
pub fn format_time_with_offset(secs: i64, offset: i64) -> String {
    let local = secs + offset;
    let days = local.div_euclid(86_400);
    let sod = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.abs();
    format!(
        "{y}-{m:02}-{d:02} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60,
        a / 3600,
        (a % 3600) / 60
    )
}

/// UTC offset (seconds east) of the local time zone at `secs`, as `localtime` sees it (`TZ`).
pub fn local_offset(secs: i64) -> i64 {
    // SAFETY: localtime_r writes only into the zeroed `tm` we own; a null return leaves it zeroed.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        // libc deprecates naming time_t for musl (its width changed in musl 1.2); it is the
        // type localtime_r takes, 64 bits on every target built.
        #[allow(deprecated)]
        let t = secs as libc::time_t;
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

/// Seconds since the epoch, as `time(NULL)` would have returned at that moment.
pub fn epoch_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => {
            let d = e.duration();
            -(d.as_secs() as i64) - i64::from(d.subsec_nanos() > 0)
        }
    }
}

/// Local date and time of `secs` as (year, month, day, hour, minute, second).
pub fn local_fields(secs: i64) -> (i64, u32, u32, i64, i64, i64) {
    let local = secs + local_offset(secs);
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let sod = local.rem_euclid(86_400);
    (y, m, d, sod / 3600, (sod % 3600) / 60, sod % 60)
}

/// `YYYY-MM-DD HH:MM:SS` in local time, as in a database header.
pub fn local(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = local_fields(epoch_secs(t));
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}
