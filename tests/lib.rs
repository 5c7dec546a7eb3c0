//! Integration tests live in `it/` (in-process stack) and `faults/` (real processes, broken on
//! purpose); this library holds the little both need.

use std::path::{Path, PathBuf};

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A local TCP port nobody listens on right now, for a service under test.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free local port")
        .local_addr()
        .expect("bound address")
        .port()
}
