//! Field encodings of AIDE's database lines.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt::Write;

/// Bytes AIDE escapes as `%XX` besides the non-printable ones (`URL_UNSAFE` in util.c).
/// Debian's 0.18.3 also escapes `,` (xattr and ACL fields are comma-separated).
const URL_UNSAFE: &[u8] = b" <>\"#%{}|\\^~[]`@:\x1b',";

fn is_unsafe(b: u8) -> bool {
    !(0x20..0x7f).contains(&b) || URL_UNSAFE.contains(&b)
}

/// `%XX`-escape a name the way AIDE's `encode_string` does (upper-case hex).
pub fn escape(raw: &[u8], out: &mut String) {
    for &b in raw {
        if is_unsafe(b) {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(b as char);
        }
    }
}

/// Undo `%XX` escapes; a `%` not followed by two hex digits stays literal, as in AIDE.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// A nullable string field (`lname`, xattr keys): `0` is absent, `0-` empty, a leading `0` doubled.
pub fn write_optional(v: Option<&[u8]>, out: &mut String) {
    match v {
        None => out.push('0'),
        Some([]) => out.push_str("0-"),
        Some(v) => {
            let v = if v[0] == b'0' {
                out.push_str("00");
                &v[1..]
            } else {
                v
            };
            escape(v, out);
        }
    }
}

pub fn read_optional(s: &str) -> Option<Vec<u8>> {
    match s {
        "0" => None,
        "0-" => Some(Vec::new()),
        _ if s.starts_with("00") => Some(unescape(&s[1..])),
        _ => Some(unescape(s)),
    }
}

pub fn b64(data: &[u8], out: &mut String) {
    STANDARD.encode_string(data, out);
}

pub fn b64_string(data: &[u8]) -> String {
    STANDARD.encode(data)
}

pub fn unb64(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok()
}

/// Times are the base64 of their decimal text; 0 is written as `0`.
pub fn write_time(t: i64, out: &mut String) {
    if t == 0 {
        out.push('0');
    } else {
        b64(t.to_string().as_bytes(), out);
    }
}

pub fn read_time(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let text = unb64(s)?;
    std::str::from_utf8(&text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_escape_like_aide() {
        let mut s = String::new();
        escape(b"/dir with space/file#hash%pct", &mut s);
        assert_eq!(s, "/dir%20with%20space/file%23hash%25pct");
        assert_eq!(unescape(&s), b"/dir with space/file#hash%pct");
        let mut s = String::new();
        escape("/caf\u{e9}\n\u{ff}".as_bytes(), &mut s);
        assert_eq!(s, "/caf%C3%A9%0A%C3%BF");
        assert_eq!(unescape("/a%2"), b"/a%2");
        assert_eq!(unescape("/a%zz"), b"/a%zz");
        assert_eq!(unescape("/a%2f"), b"/a/");
    }

    #[test]
    fn optional_strings_round_trip() {
        for v in [
            None,
            Some(&b""[..]),
            Some(b"0abc"),
            Some(b"../etc/hello.conf"),
            Some(b"0"),
            Some(b"0-"),
        ] {
            let mut s = String::new();
            write_optional(v, &mut s);
            assert_eq!(read_optional(&s).as_deref(), v, "{s}");
        }
    }

    #[test]
    fn times_are_base64_of_decimal() {
        let mut s = String::new();
        write_time(1795913922, &mut s);
        assert_eq!(s, "MTc5NTkxMzkyMg==");
        assert_eq!(read_time(&s), Some(1795913922));
        assert_eq!(read_time("0"), Some(0));
        assert_eq!(read_time("!!"), None);
    }
}
