//! Message digests, several at once over one stream of bytes.

use crate::attr::{Attr, AttrSet, HASH_ORDER, SUPPORTED_HASHES};
use md5::Digest;

enum Hasher {
    Md5(md5::Md5),
    /// ring's SHA-1/SHA-2 are OpenSSL's assembly (SHA-NI, AVX2): 1.7x the sha2 crate's
    /// SHA-512 on the machines we run on, and hashing is what a scan spends its time on.
    Ring(ring::digest::Context),
    Rmd160(ripemd::Ripemd160),
    Tiger(tiger::Tiger),
    Whirlpool(whirlpool::Whirlpool),
    Gost(gost94::Gost94Test),
    Crc32(Crc32Bzip2),
    Crc32b(crc32fast::Hasher),
}

/// Digests keyed by hash attribute, sorted by attribute bit.
pub type Digests = Vec<(Attr, Box<[u8]>)>;

/// Computes every requested digest in one pass.
pub struct MultiHasher {
    hashers: Vec<(Attr, Hasher)>,
}

impl MultiHasher {
    /// Hashers for the supported hashes in `attrs`; others are ignored (the caller reports them).
    pub fn new(attrs: AttrSet) -> MultiHasher {
        let hashers = HASH_ORDER
            .iter()
            .filter(|a| attrs.contains(**a) && SUPPORTED_HASHES.contains(**a))
            .map(|a| {
                let h = match a {
                    Attr::Md5 => Hasher::Md5(Default::default()),
                    Attr::Sha1 => Hasher::Ring(ring::digest::Context::new(
                        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
                    )),
                    Attr::Sha256 => Hasher::Ring(ring::digest::Context::new(&ring::digest::SHA256)),
                    Attr::Sha512 => Hasher::Ring(ring::digest::Context::new(&ring::digest::SHA512)),
                    Attr::Rmd160 => Hasher::Rmd160(Default::default()),
                    Attr::Tiger => Hasher::Tiger(Default::default()),
                    Attr::Whirlpool => Hasher::Whirlpool(Default::default()),
                    Attr::Gost => Hasher::Gost(Default::default()),
                    Attr::Crc32 => Hasher::Crc32(Crc32Bzip2::new()),
                    _ => Hasher::Crc32b(Default::default()),
                };
                (*a, h)
            })
            .collect();
        MultiHasher { hashers }
    }

    pub fn is_empty(&self) -> bool {
        self.hashers.is_empty()
    }

    pub fn update(&mut self, data: &[u8]) {
        for (_, h) in &mut self.hashers {
            match h {
                Hasher::Md5(h) => h.update(data),
                Hasher::Ring(h) => h.update(data),
                Hasher::Rmd160(h) => h.update(data),
                Hasher::Tiger(h) => h.update(data),
                Hasher::Whirlpool(h) => h.update(data),
                Hasher::Gost(h) => h.update(data),
                Hasher::Crc32(h) => h.update(data),
                Hasher::Crc32b(h) => h.update(data),
            }
        }
    }

    /// The digests, sorted by attribute bit (the order [`crate::entry::Entry::hashes`] keeps).
    pub fn finish(self) -> Digests {
        let mut out: Vec<(Attr, Box<[u8]>)> = self
            .hashers
            .into_iter()
            .map(|(a, h)| {
                let d: Box<[u8]> = match h {
                    Hasher::Md5(h) => h.finalize().to_vec().into(),
                    Hasher::Ring(h) => h.finish().as_ref().into(),
                    Hasher::Rmd160(h) => h.finalize().to_vec().into(),
                    // mhash writes each 64-bit word of the Tiger state most significant byte first.
                    Hasher::Tiger(h) => h
                        .finalize()
                        .chunks(8)
                        .flat_map(|w| w.iter().rev().copied())
                        .collect(),
                    Hasher::Whirlpool(h) => h.finalize().to_vec().into(),
                    Hasher::Gost(h) => h.finalize().to_vec().into(),
                    // mhash and AIDE store both CRCs least significant byte first.
                    Hasher::Crc32(h) => h.finish().to_le_bytes().to_vec().into(),
                    Hasher::Crc32b(h) => h.finalize().to_le_bytes().to_vec().into(),
                };
                (a, d)
            })
            .collect();
        out.sort_by_key(|(a, _)| *a as u8);
        out
    }
}

/// mhash's `CRC32`: the non-reflected CRC-32 (polynomial 0x04C11DB7) also known as CRC-32/BZIP2.
struct Crc32Bzip2 {
    crc: u32,
}

static BZIP2_TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();

impl Crc32Bzip2 {
    fn new() -> Self {
        Crc32Bzip2 { crc: 0xffff_ffff }
    }

    fn table() -> &'static [u32; 256] {
        BZIP2_TABLE.get_or_init(|| {
            let mut t = [0u32; 256];
            for (i, slot) in t.iter_mut().enumerate() {
                let mut c = (i as u32) << 24;
                for _ in 0..8 {
                    c = if c & 0x8000_0000 != 0 {
                        (c << 1) ^ 0x04C1_1DB7
                    } else {
                        c << 1
                    };
                }
                *slot = c;
            }
            t
        })
    }

    fn update(&mut self, data: &[u8]) {
        let t = Self::table();
        let mut crc = self.crc;
        for &b in data {
            crc = (crc << 8) ^ t[((crc >> 24) as u8 ^ b) as usize];
        }
        self.crc = crc;
    }

    fn finish(&self) -> u32 {
        !self.crc
    }
}

/// SHA-256 of `data` in lowercase hex: the identity of configs, DaemonSet specs and baseline
/// databases in the operator and daemon.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// SHA-1 of `data` in lowercase hex: upstream's way of shortening object names.
pub fn sha1_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref())
}

/// Lowercase hex, as AIDE's `report_base16` and every digest the operator shows.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::encode::b64_string;

    #[test]
    fn digests_match_aide() {
        // Values from AIDE 0.18.3's report for a file holding "hello world\n".
        let mut h = MultiHasher::new(crate::attr::GROUP_H);
        h.update(b"hello world\n");
        let d = h.finish();
        let get = |a: Attr| b64_string(&d.iter().find(|(x, _)| *x == a).unwrap().1);
        assert_eq!(get(Attr::Md5), "b1kCrCNwJL3QwXbLkwY9xA==");
        let empty = MultiHasher::new(AttrSet::of(&[Attr::Tiger])).finish();
        assert_eq!(b64_string(&empty[0].1), "JPATDGOskzIWFm52sbuSX/Nz3i1JWE56");
        assert_eq!(get(Attr::Crc32), "NujsTg==");
        assert_eq!(get(Attr::Sha1), "IlljY7PeQLBvmB+4XYIxLowO1RE=");
        assert_eq!(
            get(Attr::Sha256),
            "qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSpEc="
        );
        assert_eq!(
            get(Attr::Sha512),
            "2zl0qX8kB7fK4a5jfAAwaHoRkTJ01XhJJVjjnBbAF96E6s3Ixi/jTuThK0sUKIF/Cbaidgw/imZM6ulNJDSlkw=="
        );
        assert_eq!(get(Attr::Crc32b), "LTsIrw==");
        assert_eq!(get(Attr::Tiger), "5PEcoZVEMkzrHWJApnZs9z8lSK8YynB0");
        assert_eq!(get(Attr::Rmd160), "qRVRmp+1zuZaVq0EEjzKo0SFBnw=");
        assert_eq!(
            get(Attr::Gost),
            "kh4MzXlpxUj/49E4Bx4Btt3X4/dKrXvKR+APxrlnqHw="
        );
        assert_eq!(
            get(Attr::Whirlpool),
            "gTNQ6k9SmZWPM47pyGDfRUbnlV8Yhn9c3ZNklgxo52sV7VmabRdYpEUNBpN5ujH6cZPJD/4vnQRdQqNSbxCupA=="
        );
    }
}
