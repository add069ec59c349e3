// The sandbox ("pause") container of the real test nodes, built by scripts/image.py pause: it
// holds a pod's namespaces, reaps the orphans it inherits, and exits at once on SIGINT/SIGTERM
// (as PID 1 of its PID namespace a signal without a handler would be ignored). Only std and the
// libc that std links: no crate, so rustc builds it alone in a second.
use std::os::raw::c_int;

const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;
const SIGCHLD: c_int = 17;
const WNOHANG: c_int = 1;

extern "C" {
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    fn pause() -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn _exit(status: c_int) -> !;
}

extern "C" fn on_stop(_: c_int) {
    unsafe { _exit(0) }
}

extern "C" fn on_child(_: c_int) {
    unsafe { while waitpid(-1, std::ptr::null_mut(), WNOHANG) > 0 {} }
}

fn main() {
    unsafe {
        signal(SIGINT, on_stop);
        signal(SIGTERM, on_stop);
        signal(SIGCHLD, on_child);
        loop {
            pause();
        }
    }
}
