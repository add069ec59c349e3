//! Local-time formatting as AIDE prints it (`2026-11-29 00:59:24 +0000`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Broken-down local time of a Unix timestamp, with its UTC offset in seconds.
pub fn local_parts(secs: i64) -> (libc::tm, i64) {
    // SAFETY: localtime_r only writes the tm we pass; a zeroed tm is a valid initial value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t: libc::time_t = secs as libc::time_t;
    unsafe {
        libc::localtime_r(&t, &mut tm);
    }
    let off = tm.tm_gmtoff;
    (tm, off)
}

/// `YYYY-MM-DD HH:MM:SS`, plus ` +HHMM` when `offset` is set.
pub fn format_secs(secs: i64, offset: bool) -> String {
    let (tm, off) = local_parts(secs);
    let mut s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    );
    if offset {
        let sign = if off < 0 { '-' } else { '+' };
        let a = off.abs();
        s.push_str(&format!(" {sign}{:02}{:02}", a / 3600, (a % 3600) / 60));
    }
    s
}

pub fn local(t: SystemTime, offset: bool) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    format_secs(secs, offset)
}
