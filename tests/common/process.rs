//! Process helpers shared by the real-server harnesses (Dovecot, slapd).

use std::process::Child;

/// Whether the tests run as root (servers then drop to `nobody`).
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// Kill a server started in its own process group, all of it at once (what a
/// crash looks like), and reap it.
pub fn kill_group(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        // SAFETY: kill(2) on our own child's process group.
        unsafe {
            libc::kill(-(child.id() as i32), libc::SIGKILL);
        }
        let _ = child.wait();
    }
}
