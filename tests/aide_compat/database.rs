//! AIDE databases (gzip'd or plain), decoded: `@@db_spec` columns and entries.

#![allow(dead_code)] // each test uses a part

use super::*;

#[derive(Debug, Clone)]
pub struct DbEntry {
    /// Decoded (unescaped) path.
    pub name: Vec<u8>,
    /// 1-based line number in the (uncompressed) database.
    pub line: usize,
    /// Raw fields, aligned with `Database::spec` (field 0 is the encoded name).
    pub fields: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub gzip: bool,
    pub spec: Vec<String>,
    pub entries: Vec<DbEntry>,
    pub has_begin: bool,
    pub has_end: bool,
    /// Uncompressed text.
    pub text: Vec<u8>,
}

impl Database {
    pub fn names(&self) -> BTreeSet<Vec<u8>> {
        self.entries.iter().map(|e| e.name.clone()).collect()
    }

    /// name -> (column -> value), columns by `@@db_spec` name.
    pub fn by_name(&self) -> BTreeMap<Vec<u8>, BTreeMap<String, String>> {
        self.entries
            .iter()
            .map(|e| {
                let m = self
                    .spec
                    .iter()
                    .zip(e.fields.iter())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                (e.name.clone(), m)
            })
            .collect()
    }
}

/// Read a file that may be gzip-compressed (detected by magic, like zlib's gzdopen).
pub fn read_maybe_gzip(path: &Path) -> Result<(bool, Vec<u8>), String> {
    let raw = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("{}: corrupt gzip stream: {e}", path.display()))?;
        Ok((true, out))
    } else {
        Ok((false, raw))
    }
}

/// Decode an AIDE database (plain or gzip) into its `@@db_spec` and entries.
pub fn decode_db(path: &Path) -> Result<Database, String> {
    let (gzip, text) = read_maybe_gzip(path)?;
    let mut db = Database {
        gzip,
        spec: Vec::new(),
        entries: Vec::new(),
        has_begin: false,
        has_end: false,
        text: Vec::new(),
    };
    for (idx, line) in text.split(|&b| b == b'\n').enumerate() {
        let lineno = idx + 1;
        if !db.has_begin {
            if line.starts_with(b"@@begin_db") {
                db.has_begin = true;
            }
            continue;
        }
        if line.starts_with(b"@@end_db") {
            db.has_end = true;
            break;
        }
        if line.starts_with(b"#") || line.is_empty() {
            continue;
        }
        let fields: Vec<String> = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|f| !f.is_empty())
            .map(|f| {
                String::from_utf8(f.to_vec())
                    .map_err(|_| format!("{}:{lineno}: non-ASCII byte in database", path.display()))
            })
            .collect::<Result<_, _>>()?;
        if fields.first().map(|f| f == "@@db_spec").unwrap_or(false) {
            db.spec = fields[1..].to_vec();
            continue;
        }
        if db.spec.is_empty() {
            return Err(format!(
                "{}:{lineno}: entry before @@db_spec",
                path.display()
            ));
        }
        if fields.len() != db.spec.len() {
            return Err(format!(
                "{}:{lineno}: {} fields, @@db_spec has {}",
                path.display(),
                fields.len(),
                db.spec.len()
            ));
        }
        let name = decode_string(fields[0].as_bytes());
        db.entries.push(DbEntry {
            name,
            line: lineno,
            fields,
        });
    }
    db.text = text;
    if !db.has_begin {
        return Err(format!("{}: no @@begin_db", path.display()));
    }
    Ok(db)
}

/// AIDE's `decode_string`: `%XX` (hex, any case) -> byte, everything else literal.
pub fn decode_string(s: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}
