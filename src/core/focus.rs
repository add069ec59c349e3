//! A focused check: only some paths (and everything below them) re-measured and compared, as
//! the realtime watcher asks when the kernel said they changed. The walk still decides with the
//! rules from the root down (an entry is selected exactly as a full walk would select it), but
//! reads only the directories on the way to a focused path, and only the names on that way.

use crate::entry::path_order;
use std::collections::BTreeSet;

/// Paths (names as the walk sees them, after `root_prefix`), each standing for itself and
/// everything below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Focus {
    /// Sorted, without trailing `/`, none below another.
    paths: Vec<Vec<u8>>,
}

impl Focus {
    /// The focus on `paths`; relative names are dropped (nothing is named that way).
    pub fn new<I: IntoIterator<Item = Vec<u8>>>(paths: I) -> Focus {
        let mut set: BTreeSet<Vec<u8>> = BTreeSet::new();
        for mut p in paths {
            if p.first() != Some(&b'/') {
                continue;
            }
            while p.len() > 1 && p.last() == Some(&b'/') {
                p.pop();
            }
            set.insert(p);
        }
        let mut kept: Vec<Vec<u8>> = Vec::with_capacity(set.len());
        let mut sorted: Vec<Vec<u8>> = set.into_iter().collect();
        sorted.sort_by(|a, b| path_order(a, b));
        for p in sorted {
            // In AIDE order a path's ancestors come before it, and between an ancestor and its
            // descendants nothing else comes: the last kept one is the only candidate.
            if kept.last().is_some_and(|k| below_or_at(&p, k)) {
                continue;
            }
            kept.push(p);
        }
        Focus { paths: kept }
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn paths(&self) -> &[Vec<u8>] {
        &self.paths
    }

    /// `name` is a focused path or below one.
    pub fn covers(&self, name: &[u8]) -> bool {
        // The candidate is the greatest focused path not after `name` in AIDE order.
        let i = self
            .paths
            .partition_point(|p| path_order(p, name) != std::cmp::Ordering::Greater);
        i > 0 && below_or_at(name, &self.paths[i - 1])
    }

    /// The names of `dir`'s children on the way to a focused path below `dir` (sorted, unique):
    /// all a focused walk needs to read of a directory it does not cover.
    pub fn next_names(&self, dir: &[u8]) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        for p in &self.paths {
            let rest = if dir == b"/" {
                &p[1..]
            } else if p.len() > dir.len() && p.starts_with(dir) && p[dir.len()] == b'/' {
                &p[dir.len() + 1..]
            } else {
                continue;
            };
            let name = rest.split(|&c| c == b'/').next().unwrap_or_default();
            if !name.is_empty() && out.last().map(Vec::as_slice) != Some(name) {
                out.push(name.to_vec());
            }
        }
        out.sort_by(|a, b| path_order(a, b));
        out.dedup();
        out
    }
}

/// `name` is `at` or below it.
fn below_or_at(name: &[u8], at: &[u8]) -> bool {
    at == b"/" || (name.starts_with(at) && (name.len() == at.len() || name[at.len()] == b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(paths: &[&str]) -> Focus {
        Focus::new(paths.iter().map(|p| p.as_bytes().to_vec()))
    }

    #[test]
    fn nested_and_trailing_slashes_collapse() {
        let focus = f(&["/etc/a/", "/etc/a/b", "/etc/a.b", "rel", "/etc/ab/c"]);
        let shown: Vec<&[u8]> = focus.paths().iter().map(Vec::as_slice).collect();
        assert_eq!(shown, [&b"/etc/a"[..], b"/etc/a.b", b"/etc/ab/c"]);
        assert!(f(&["/", "/etc"]).covers(b"/usr/x"));
        assert_eq!(f(&["/", "/etc"]).len(), 1);
    }

    #[test]
    fn covers_a_path_and_what_is_below_it_only() {
        let focus = f(&["/etc/a", "/etc/a.b", "/usr/lib/x"]);
        for yes in ["/etc/a", "/etc/a/b/c", "/etc/a.b", "/usr/lib/x/y"] {
            assert!(focus.covers(yes.as_bytes()), "{yes}");
        }
        for no in [
            "/etc",
            "/etc/ab",
            "/etc/a.c",
            "/usr/lib",
            "/usr/lib/xy",
            "/",
            "/z",
        ] {
            assert!(!focus.covers(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn next_names_lead_to_the_focused_paths() {
        let focus = f(&["/etc/a/b", "/etc/c", "/usr/x"]);
        let names = |d: &str| -> Vec<String> {
            focus
                .next_names(d.as_bytes())
                .into_iter()
                .map(|n| String::from_utf8(n).unwrap())
                .collect()
        };
        assert_eq!(names("/"), ["etc", "usr"]);
        assert_eq!(names("/etc"), ["a", "c"]);
        assert_eq!(names("/etc/a"), ["b"]);
        assert!(names("/etc/c").is_empty());
        assert!(names("/opt").is_empty());
    }
}
