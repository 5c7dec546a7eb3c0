//! Metering and fencing by the kernel's own accounting (issue 12): each step runs in a cgroup of
//! its own, so memory the job hides from a per-process sum (memfds, tmpfs files, pipe buffers),
//! CPU of children nobody waits for, and an OOM the job arranges all land on the job itself,
//! measured by the cgroup, with the job's verdict — and the container's agent survives.

use crate::helpers::{app, assert_verdict, base_language, both_modes};
use serde_json::{json, Value};

/// C (also valid C++): holds memory the way the mode on stdin says, printing as it goes.
/// memfd: 16 MiB memfds up to 640 MiB; tmpfs: 1 MiB files in the workspace up to 200 MiB;
/// pipes: 120 pipes of 1 MiB each, filled.
const C_HOLDER: &str = r#"
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
static char buf[1 << 20];
static long held_mb;
static void held(long mb) {
    held_mb += mb;
    printf("held %ld MB\n", held_mb);
    fflush(stdout);
}
int main(void) {
    char mode[16] = {0};
    if (scanf("%15s", mode) != 1) return 2;
    memset(buf, 'x', sizeof buf);
    if (!strcmp(mode, "memfd")) {
        for (int i = 0; i < 40; i++) {
            int fd = memfd_create("hold", 0);
            if (fd < 0) { perror("memfd_create"); return 3; }
            for (int j = 0; j < 16; j++)
                if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) { perror("write"); return 3; }
            held(16);
        }
    } else if (!strcmp(mode, "tmpfs")) {
        char name[32];
        for (int i = 0; i < 200; i++) {
            snprintf(name, sizeof name, "f%d", i);
            FILE *f = fopen(name, "w");
            if (!f || fwrite(buf, 1, sizeof buf, f) != sizeof buf || fclose(f)) { perror(name); return 3; }
            held(1);
        }
    } else if (!strcmp(mode, "pipes")) {
        long bytes = 0;
        for (int i = 0; i < 120; i++) {
            int p[2];
            if (pipe(p) < 0) { perror("pipe"); return 3; }
            fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
            fcntl(p[1], F_SETFL, O_NONBLOCK);
            ssize_t n;
            while ((n = write(p[1], buf, 65536)) > 0) bytes += n;
            if (bytes >= (held_mb + 4) << 20) held((bytes >> 20) - held_mb);
        }
    }
    printf("held all\n");
    return 0;
}
"#;

const GO_HOLDER: &str = r#"package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

var heldMB int

func held(mb int) {
	heldMB += mb
	fmt.Printf("held %d MB\n", heldMB)
}

func main() {
	var mode string
	fmt.Scan(&mode)
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = 'x'
	}
	switch mode {
	case "memfd":
		name := []byte("hold\x00")
		for i := 0; i < 40; i++ {
			fd, _, e := syscall.Syscall(319, uintptr(unsafe.Pointer(&name[0])), 0, 0) // memfd_create
			if e != 0 {
				fmt.Println("memfd_create:", e)
				os.Exit(3)
			}
			for j := 0; j < 16; j++ {
				if _, err := syscall.Write(int(fd), buf); err != nil {
					fmt.Println("write:", err)
					os.Exit(3)
				}
			}
			held(16)
		}
	case "tmpfs":
		for i := 0; i < 200; i++ {
			if err := os.WriteFile(fmt.Sprintf("f%d", i), buf, 0600); err != nil {
				fmt.Println(err)
				os.Exit(3)
			}
			held(1)
		}
	case "pipes":
		bytes := 0
		for i := 0; i < 120; i++ {
			var p [2]int
			if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK); err != nil {
				fmt.Println("pipe:", err)
				os.Exit(3)
			}
			syscall.Syscall(syscall.SYS_FCNTL, uintptr(p[1]), 1031, 1<<20) // F_SETPIPE_SZ
			for {
				n, err := syscall.Write(p[1], buf[:65536])
				if err != nil || n <= 0 {
					break
				}
				bytes += n
			}
			if bytes >= (heldMB+4)<<20 {
				held(bytes>>20 - heldMB)
			}
		}
	}
	fmt.Println("held all")
}
"#;

const RUST_HOLDER: &str = r#"use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::io::FromRawFd;

extern "C" {
    fn memfd_create(name: *const u8, flags: u32) -> i32;
    fn pipe(fds: *mut i32) -> i32;
    fn fcntl(fd: i32, cmd: i32, ...) -> i32;
}

fn main() {
    let mut mode = String::new();
    std::io::stdin().read_to_string(&mut mode).unwrap();
    let buf = vec![b'x'; 1 << 20];
    let mut held_mb = 0u64;
    let mut keep: Vec<File> = Vec::new();
    let mut held = |mb: u64, held_mb: &mut u64| {
        *held_mb += mb;
        println!("held {} MB", held_mb);
    };
    match mode.trim() {
        "memfd" => {
            for _ in 0..40 {
                let fd = unsafe { memfd_create(b"hold\0".as_ptr(), 0) };
                if fd < 0 {
                    println!("memfd_create failed");
                    std::process::exit(3);
                }
                let mut f = unsafe { File::from_raw_fd(fd) };
                for _ in 0..16 {
                    f.write_all(&buf).unwrap();
                }
                keep.push(f);
                held(16, &mut held_mb);
            }
        }
        "tmpfs" => {
            for i in 0..200 {
                std::fs::write(format!("f{}", i), &buf).unwrap();
                held(1, &mut held_mb);
            }
        }
        "pipes" => {
            let mut bytes = 0u64;
            for _ in 0..120 {
                let mut p = [0i32; 2];
                if unsafe { pipe(p.as_mut_ptr()) } < 0 {
                    println!("pipe failed");
                    std::process::exit(3);
                }
                unsafe {
                    fcntl(p[1], 1031, 1i32 << 20); // F_SETPIPE_SZ
                    fcntl(p[1], 4, 2048i32); // F_SETFL, O_NONBLOCK
                }
                let mut w = unsafe { File::from_raw_fd(p[1]) };
                let r = unsafe { File::from_raw_fd(p[0]) };
                while let Ok(n) = w.write(&buf[..65536]) {
                    if n == 0 {
                        break;
                    }
                    bytes += n as u64;
                }
                keep.push(w);
                keep.push(r);
                if bytes >= (held_mb + 4) << 20 {
                    let mb = (bytes >> 20) - held_mb;
                    held(mb, &mut held_mb);
                }
            }
        }
        _ => {}
    }
    println!("held all");
}
"#;

fn holder(language: &str) -> &'static str {
    match base_language(language) {
        "c" | "cpp" => C_HOLDER,
        "go" => GO_HOLDER,
        "rust" => RUST_HOLDER,
        other => panic!("no memory holder for {other}"),
    }
}

/// Runs the holder in `mode` under `memory_mb` and checks the run step was held to it: the
/// verdict is the job's, the program never got everything, and the cgroup's peak is at the
/// limit (reached, never passed).
async fn held_to_the_limit(language: &str, mode: &str, memory_mb: u64) {
    let job = app()
        .run(json!({
            "language": language,
            "source": holder(language),
            "stdin": mode,
            "limits": {"memory_mb": memory_mb, "wall_time_ms": 10000},
        }))
        .await;
    assert_verdict(&job, "memory_limit_exceeded");
    let stdout = job["run"]["stdout"].as_str().unwrap_or_default();
    assert!(!stdout.contains("held all"), "held everything: {job:#}");
    let peak = job["run"]["memory_kb"].as_u64().unwrap();
    let limit = memory_mb * 1024;
    assert!(
        peak <= limit,
        "peak {peak} KiB above the {limit} KiB limit: {job:#}"
    );
    assert!(
        peak >= limit * 3 / 4,
        "peak {peak} KiB far below the limit: {job:#}"
    );
}

/// The three bypasses in one compiled language.
async fn compiled_run_step_is_held(language: &str) {
    held_to_the_limit(language, "memfd", 64).await;
    held_to_the_limit(language, "tmpfs", 64).await;
    held_to_the_limit(language, "pipes", 32).await;
    // And the next job in the language is fine.
    let ok = app()
        .run(json!({"language": language, "source": holder(language), "stdin": "none"}))
        .await;
    assert_verdict(&ok, "ok");
}

both_modes! {
    /// memfd, tmpfs and pipe pages count against a C program's own `memory_mb`, not against the
    /// compiler's limit.
    async fn c_memory_is_held_to_its_limit(mode) {
        compiled_run_step_is_held(&mode.lang("c")).await;
    }
}

both_modes! {
    async fn cpp_memory_is_held_to_its_limit(mode) {
        compiled_run_step_is_held(&mode.lang("cpp")).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn go_memory_is_held_to_its_limit() {
    compiled_run_step_is_held("go").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_memory_is_held_to_its_limit() {
    compiled_run_step_is_held("rust").await;
}

/// Children that are never waited for (SIGCHLD ignored: the kernel reaps them) are invisible
/// to a sum over processes once gone; the cgroup counted them.
const C_AUTO_REAPED: &str = r#"
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
static void burn(long ms) {
    struct timespec t0, t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    do clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
}
int main(void) {
    signal(SIGCHLD, SIG_IGN);
    for (int i = 0; i < 40; i++) {
        if (fork() == 0) { burn(150); _exit(0); }
        usleep(160000);
    }
    puts("done");
    return 0;
}
"#;

const PY_AUTO_REAPED: &str = r#"
import os, signal, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
for _ in range(40):
    if os.fork() == 0:
        end = time.process_time() + 0.15
        while time.process_time() < end:
            pass
        os._exit(0)
    time.sleep(0.16)
print("done")
"#;

async fn auto_reaped_children_count(language: &str, source: &str) {
    let job = app()
        .run(json!({
            "language": language,
            "source": source,
            "limits": {"cpu_time_ms": 1000, "wall_time_ms": 15000},
        }))
        .await;
    assert_verdict(&job, "time_limit_exceeded");
    let run = &job["run"];
    let cpu = run["cpu_ms"].as_u64().unwrap();
    assert!((1000..1300).contains(&cpu), "cpu_ms {cpu}: {job:#}");
    // Unmetered, the 40 children end by themselves after 6.4 s of wall time and print "done".
    assert!(
        run["wall_ms"].as_u64().unwrap() < 15000,
        "stopped for its CPU, not at its wall limit: {job:#}"
    );
    assert!(!run["stdout"].as_str().unwrap_or_default().contains("done"));
}

both_modes! {
    async fn cpu_of_children_nobody_waits_for_is_counted(mode) {
        auto_reaped_children_count(&mode.lang("c"), C_AUTO_REAPED).await;
        auto_reaped_children_count(&mode.lang("python"), PY_AUTO_REAPED).await;
    }
}

/// A job that tries to make the agent the OOM killer's choice, as the hostile suite did: it
/// lowers its `oom_score_adj`, then holds its memory in memfds, which no process's RSS shows,
/// so its own processes look small beside the agent.
const PY_OOM_SCORE: &str = r#"
import os
print(os.uname().nodename, flush=True)
def score():
    with open('/proc/self/oom_score_adj') as f:
        return f.read().strip()
print(score(), flush=True)
try:
    fd = os.open('/proc/self/oom_score_adj', os.O_WRONLY)
    os.write(fd, b'0')
    print('lowered', flush=True)
except OSError as e:
    print('refused', e.errno, flush=True)
print(score(), flush=True)
held = []
chunk = b'x' * (8 << 20)
for _ in range(64):
    m = os.memfd_create('spike')
    os.write(m, chunk)
    held.append(m)
print('survived')
"#;

fn hostname_of(job: &Value) -> String {
    let stdout = job["run"]["stdout"].as_str().unwrap_or_default();
    stdout.lines().next().unwrap_or_default().to_string()
}

/// Whether this host can give containers CAP_SYS_RESOURCE (the runner, on this host, adds it
/// when it can): only then can the shim make 1000 the job's floor.
fn host_grants_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = rce_pool::container_spec::bounding_set(&status).unwrap();
    bounding >> 24 & 1 == 1
}

both_modes! {
    async fn a_job_cannot_make_the_agent_the_oom_victim(mode) {
        let language = mode.lang("python_solo");
        let app = app();
        let job = app
            .run(json!({
                "language": language,
                "source": PY_OOM_SCORE,
                "limits": {"memory_mb": 128},
            }))
            .await;
        assert_verdict(&job, "memory_limit_exceeded");
        let lines: Vec<&str> = job["run"]["stdout"].as_str().unwrap().lines().collect();
        assert_eq!(lines.get(1), Some(&"1000"), "the job starts as the first victim: {job:#}");
        if host_grants_sys_resource() {
            assert_eq!(lines.get(2), Some(&"refused 13"), "the job lowered its score: {job:#}");
            assert_eq!(lines.get(3), Some(&"1000"), "{job:#}");
        } else {
            // No CAP_SYS_RESOURCE to give (this test VM's root lacks it): the job may lower
            // its score to 0, never below the agent's, and it gains nothing by it (below).
            assert_eq!(lines.get(3), Some(&"0"), "{job:#}");
        }
        let peak = job["run"]["memory_kb"].as_u64().unwrap();
        assert!(peak <= 128 * 1024, "{job:#}");
        // The agent (or the exec'd shim) survived: the same container runs the next job.
        let next = app
            .run(json!({"language": language, "source": "import os\nprint(os.uname().nodename)"}))
            .await;
        assert_verdict(&next, "ok");
        assert_eq!(hostname_of(&next), hostname_of(&job), "the container was replaced");
    }
}

/// An SCM_RIGHTS cycle: a socketpair whose own ends, a listening abstract socket and memfds sit
/// in its queue when the job exits, alive until the kernel's garbage collector runs.
fn scm_cycle(tag: &str) -> String {
    format!(
        r#"
import os, socket
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(b'\0{tag}')
srv.listen()
a, b = socket.socketpair()
fds = [a.fileno(), b.fileno(), srv.fileno()]
for _ in range(3):
    m = os.memfd_create('inflight')
    os.write(m, b'x' * (40 << 20))
    fds.append(m)
socket.send_fds(a, [b'x'], fds)
print('in flight', flush=True)
"#
    )
}

fn after_cycle(tag: &str) -> String {
    format!(
        r#"
import socket
print('{tag}' in open('/proc/net/unix').read())
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(b'\0{tag}')
    print('connected')
except OSError:
    print('refused')
x = bytearray(40 << 20)
print('fits')
"#
    )
}

both_modes! {
    async fn nothing_survives_its_job_in_flight(mode) {
        let language = mode.lang("python_solo");
        let tag = format!("rce-inflight-{}", std::process::id());
        let app = app();
        let a = app
            .run(json!({"language": language, "source": scm_cycle(&tag), "limits": {"memory_mb": 256}}))
            .await;
        assert_verdict(&a, "ok");
        assert_eq!(a["run"]["stdout"], "in flight\n", "{a:#}");
        let b = app
            .run(json!({"language": language, "source": after_cycle(&tag), "limits": {"memory_mb": 64}}))
            .await;
        assert_verdict(&b, "ok");
        assert_eq!(
            b["run"]["stdout"], "False\nrefused\nfits\n",
            "the next job saw or reached the last one's sockets, or paid for its memfds: {b:#}"
        );
    }
}

/// `memory_kb` is comparable across languages: a program that holds 100 MiB reports it,
/// whichever language holds it.
#[tokio::test(flavor = "multi_thread")]
async fn memory_kb_is_the_cgroup_peak_in_every_language() {
    let hold_100 = [
        (
            "python",
            "x = bytearray(100 << 20)\nprint(len(x))".to_string(),
        ),
        (
            "c",
            "#include <stdlib.h>\n#include <stdio.h>\nint main(void){volatile char*p=malloc(100<<20);for(long i=0;i<(100<<20);i+=4096)p[i]=1;printf(\"%d\\n\",p[4096]);return 0;}".to_string(),
        ),
        (
            "javascript",
            "const b = Buffer.alloc(100 << 20, 1); console.log(b[5]);".to_string(),
        ),
    ];
    for (language, source) in hold_100 {
        let job = app()
            .run(json!({"language": language, "source": source, "limits": {"memory_mb": 512}}))
            .await;
        assert_verdict(&job, "ok");
        let kb = job["run"]["memory_kb"].as_u64().unwrap();
        assert!(
            (100 * 1024..200 * 1024).contains(&kb),
            "{language}: memory_kb {kb}: {job:#}"
        );
    }
}
