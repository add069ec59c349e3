// A pod that writes a host file, for the real nodes' tests (built by scripts/image.py writer):
// `writer <file> <line>...` appends each line to <file> (a hostPath mount), one every second,
// then stays until SIGINT/SIGTERM (it runs as PID 1 of its container, where a signal without a
// handler is ignored): a live process the daemon can name. Only std and the libc std links.
use std::io::Write;
use std::os::raw::c_int;

const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;

extern "C" {
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    fn pause() -> c_int;
    fn _exit(status: c_int) -> !;
}

extern "C" fn on_stop(_: c_int) {
    unsafe { _exit(0) }
}

fn main() {
    unsafe {
        signal(SIGINT, on_stop);
        signal(SIGTERM, on_stop);
    }
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next() else {
        eprintln!("usage: writer <file> <line>...");
        std::process::exit(2);
    };
    for (i, line) in args.enumerate() {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .and_then(|mut f| writeln!(f, "{line}"));
        match appended {
            Ok(()) => println!("appended {line:?} to {file}"),
            Err(e) => {
                eprintln!("{file}: {e}");
                std::process::exit(1);
            }
        }
    }
    loop {
        unsafe { pause() };
    }
}
