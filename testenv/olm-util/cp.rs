//! `cp [-flags] SRC DST` for the util image of OLM's bundle-unpack Jobs (scripts/image.py olm):
//! the Job's first container runs `/bin/cp -Rv /bin/cpb /util/cpb`. One regular file, its mode
//! kept; no shell or coreutils in the image.
use std::os::unix::fs::PermissionsExt;

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let [src, dst] = paths.as_slice() else {
        eprintln!("usage: cp [-Rv] SRC DST");
        std::process::exit(2);
    };
    let result = std::fs::copy(src, dst).and_then(|_| {
        let mode = std::fs::metadata(src)?.permissions().mode();
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))
    });
    match result {
        Ok(()) => println!("'{src}' -> '{dst}'"),
        Err(e) => {
            eprintln!("cp: {src} -> {dst}: {e}");
            std::process::exit(1);
        }
    }
}
