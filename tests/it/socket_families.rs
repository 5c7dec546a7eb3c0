//! What a job can reach through sockets and the 32-bit ABI, and what the masked `/proc` files
//! show (docs/security.md, "Seccomp: our profile against Docker's default"). A job may create
//! AF_UNIX, AF_INET and AF_INET6 sockets only: every other family (AF_VSOCK reaches the
//! hypervisor of this VM; AF_NETLINK, AF_PACKET, AF_ALG, ... are kernel attack surface) answers
//! EAFNOSUPPORT. The i386 entry points (`int $0x80`) cannot be used to go around that filter, and
//! loopback networking keeps working in every language without netlink.
//!
//! No test connects anywhere but 127.0.0.1: a forbidden socket is only ever created, never used.

use crate::helpers::{app, assert_verdict, both_modes};
use serde_json::Value;

/// The families a job may create (pool/seccomp/rce.json).
const ALLOWED: [u64; 3] = [1, 2, 10];
const EAFNOSUPPORT: &str = "97";
/// AF_VSOCK with a bit set above the 32 the kernel reads: a filter that compares all 64 bits of
/// the register (`family != 40`) lets it through, the kernel then creates an AF_VSOCK socket.
const HIGH_BIT_VSOCK: u64 = (1 << 32) | 40;

/// The line [`FAMILIES_C`] prints for a family the filter refuses: EAFNOSUPPORT for each of the
/// four socket types, whatever the kernel would have said.
fn refused(call: &str, family: u64) -> String {
    format!(
        "{call} {family} denied{}",
        format!(" {EAFNOSUPPORT}").repeat(4)
    )
}

fn stdout(job: &Value) -> &str {
    job["run"]["stdout"].as_str().unwrap_or_default()
}

async fn run_ok(language: &str, source: &str) -> Value {
    let job = app().run_source(language, source, "").await;
    assert_verdict(&job, "ok");
    job
}

/// Tries every socket type of families 0..64 (and [`HIGH_BIT_VSOCK`]) with the raw syscall, so
/// the family travels as a full 64-bit register, and the same for socketpair; then uses the
/// allowed families: a 127.0.0.1 listener, an AF_UNIX pair, an AF_INET6 socket.
const FAMILIES_C: &str = r#"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static const int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET};

static void probe(const char *what, long nr, unsigned long family) {
    int errs[4];
    for (int i = 0; i < 4; i++) {
        int pair[2];
        long r = nr == SYS_socketpair ? syscall(nr, family, types[i], 0, pair)
                                      : syscall(nr, family, types[i], 0);
        if (r >= 0) {
            if (nr == SYS_socketpair)
                close(pair[0]), close(pair[1]);
            else
                close(r);
            printf("%s %lu created\n", what, family);
            return;
        }
        errs[i] = errno;
    }
    printf("%s %lu denied %d %d %d %d\n", what, family, errs[0], errs[1], errs[2], errs[3]);
}

int main(void) {
    for (unsigned long family = 0; family < 64; family++) {
        probe("socket", SYS_socket, family);
        probe("socketpair", SYS_socketpair, family);
    }
    probe("socket", SYS_socket, (1UL << 32) | 40);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int server = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(server, (struct sockaddr *)&addr, len) || listen(server, 1) ||
        getsockname(server, (struct sockaddr *)&addr, &len)) {
        perror("listener");
        return 1;
    }
    int client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(client, (struct sockaddr *)&addr, len)) {
        perror("connect");
        return 1;
    }
    int conn = accept(server, NULL, NULL);
    char buf[5] = {0};
    if (write(client, "ping", 4) != 4 || read(conn, buf, 4) != 4) {
        perror("exchange");
        return 1;
    }
    printf("loopback %s\n", buf);

    int pair[2];
    char c = 0;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) || write(pair[0], "u", 1) != 1 ||
        read(pair[1], &c, 1) != 1) {
        perror("socketpair");
        return 1;
    }
    printf("unix pair %c\n", c);
    int six = socket(AF_INET6, SOCK_STREAM, 0);
    printf("inet6 %s\n", six >= 0 ? "created" : strerror(errno));
    return 0;
}
"#;

both_modes! {
    /// Every family but AF_UNIX, AF_INET and AF_INET6 fails with EAFNOSUPPORT for every socket
    /// type, through socket and socketpair, including AF_VSOCK with high bits set; the allowed
    /// families still work.
    async fn only_unix_inet_and_inet6_sockets_can_be_created(mode) {
        let job = run_ok(&mode.lang("c"), FAMILIES_C).await;
        let out = stdout(&job);
        for family in (0..64).chain([HIGH_BIT_VSOCK]) {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("socket {family} ")))
                .unwrap_or_else(|| panic!("no line for family {family}: {job:#}"));
            if ALLOWED.contains(&family) {
                assert_eq!(line, format!("socket {family} created"), "{job:#}");
            } else {
                assert_eq!(line, refused("socket", family), "refused by the filter: {job:#}");
            }
        }
        for family in 0..64u64 {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("socketpair {family} ")))
                .unwrap_or_else(|| panic!("no socketpair line for family {family}: {job:#}"));
            if family == 1 {
                assert_eq!(line, "socketpair 1 created", "{job:#}");
            } else if !ALLOWED.contains(&family) {
                assert_eq!(line, refused("socketpair", family), "{job:#}");
            }
        }
        for working in ["loopback ping", "unix pair u", "inet6 created"] {
            assert!(out.lines().any(|l| l == working), "{working} missing: {job:#}");
        }
    }
}

/// The families an exploit reaches for, by name, from Python's socket module.
const FAMILIES_PY: &str = r#"
import errno, socket
families = {
    'AF_UNSPEC': 0, 'AF_AX25': 3, 'AF_IPX': 4, 'AF_APPLETALK': 5, 'AF_X25': 9, 'AF_KEY': 15,
    'AF_NETLINK': 16, 'AF_PACKET': 17, 'AF_RDS': 21, 'AF_LLC': 26, 'AF_CAN': 29, 'AF_TIPC': 30,
    'AF_BLUETOOTH': 31, 'AF_ALG': 38, 'AF_VSOCK': 40, 'AF_KCM': 41, 'AF_QIPCRTR': 42,
    'AF_SMC': 43, 'AF_XDP': 44, 'AF_MCTP': 45,
}
for name, family in families.items():
    results = []
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW, socket.SOCK_SEQPACKET):
        try:
            socket.socket(family, kind).close()
            results.append('CREATED')
        except OSError as e:
            results.append(errno.errorcode.get(e.errno, str(e.errno)))
    print(name, ' '.join(results))
a, b = socket.socketpair()
a.send(b'u')
print('unix pair', b.recv(1).decode())
server = socket.create_server(('127.0.0.1', 0))
client = socket.create_connection(server.getsockname())
conn, _ = server.accept()
client.sendall(b'ping')
print('loopback', conn.recv(4).decode())
socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
print('inet6 created')
"#;

both_modes! {
    /// The same allow-list seen from an interpreter: AF_VSOCK, AF_NETLINK, AF_PACKET, AF_ALG,
    /// AF_BLUETOOTH, AF_KEY, AF_XDP, ... all fail with EAFNOSUPPORT, the way a kernel without
    /// them answers.
    async fn python_can_create_only_unix_inet_and_inet6_sockets(mode) {
        let job = run_ok(&mode.lang("python"), FAMILIES_PY).await;
        let out = stdout(&job);
        let refused: Vec<&str> = out.lines().filter(|l| l.starts_with("AF_")).collect();
        assert_eq!(refused.len(), 20, "{job:#}");
        for line in refused {
            let name = line.split(' ').next().unwrap();
            assert_eq!(
                line,
                format!("{name}{}", " EAFNOSUPPORT".repeat(4)),
                "{name} must be refused by the filter: {job:#}"
            );
        }
        for working in ["unix pair u", "loopback ping", "inet6 created"] {
            assert!(out.lines().any(|l| l == working), "{working} missing: {job:#}");
        }
    }
}

/// 32-bit system calls from a 64-bit process: `int $0x80` reaches the i386 table, where
/// socketcall (102) takes its arguments through a pointer no seccomp filter can read, and socket
/// has another number (359). Each probe runs in a child, since the filter may kill the caller.
const I386_C: &str = r#"
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long int80(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c)
                     : "memory", "r8", "r9", "r10", "r11");
    return ret;
}

static void report(const char *name, pid_t pid) {
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        printf("%s killed by signal %d\n", name, WTERMSIG(status));
}

static void probe_i386(const char *name, long nr, long a, long b, long c) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        printf("%s returned %ld\n", name, int80(nr, a, b, c));
        fflush(stdout);
        _exit(0);
    }
    report(name, pid);
}

int main(void) {
    /* The i386 ABI reads socketcall's argument block through a 32-bit pointer. */
    unsigned int *args = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (args == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    args[0] = 40, args[1] = SOCK_STREAM, args[2] = 0; /* AF_VSOCK */
    args[4] = 1, args[5] = SOCK_STREAM, args[6] = 0;  /* AF_UNIX */
    probe_i386("socketcall_vsock", 102, 1 /* SYS_SOCKET */, (long)args, 0);
    probe_i386("socketcall_unix", 102, 1, (long)(args + 4), 0);
    probe_i386("socket_i386_vsock", 359, 40, SOCK_STREAM, 0);
    probe_i386("getpid_i386", 20, 0, 0, 0);

    /* x32: the x86_64 numbers with bit 30 set. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        long r = syscall(0x40000000L | SYS_socket, 40, SOCK_STREAM, 0);
        printf("socket_x32_vsock returned %ld\n", r);
        fflush(stdout);
        _exit(0);
    }
    report("socket_x32_vsock", pid);
    int native = socket(1, SOCK_STREAM, 0);
    printf("socket_x86_64_unix returned %s\n", native >= 0 ? "a socket" : "an error");
    return 0;
}
"#;

both_modes! {
    /// Only the x86_64 ABI exists for a job: socketcall and the i386 socket call cannot create
    /// any socket (not even AF_UNIX: the whole 32-bit ABI kills the caller), and the x32 ABI
    /// cannot either. The native call still works.
    async fn the_32_bit_abis_cannot_go_around_the_family_filter(mode) {
        let job = run_ok(&mode.lang("c"), I386_C).await;
        let out = stdout(&job);
        for probe in ["socketcall_vsock", "socketcall_unix", "socket_i386_vsock", "getpid_i386"] {
            let line = out
                .lines()
                .find(|l| l.starts_with(probe))
                .unwrap_or_else(|| panic!("no line for {probe}: {job:#}"));
            assert_eq!(
                line,
                format!("{probe} killed by signal 31"),
                "the i386 ABI must be refused (SIGSYS): {job:#}"
            );
        }
        let x32 = out
            .lines()
            .find(|l| l.starts_with("socket_x32_vsock"))
            .unwrap_or_else(|| panic!("no line for the x32 probe: {job:#}"));
        let created = x32
            .strip_prefix("socket_x32_vsock returned ")
            .and_then(|r| r.parse::<i64>().ok())
            .is_some_and(|fd| fd >= 0);
        assert!(!created, "x32 created a socket: {job:#}");
        assert!(
            out.contains("socket_x86_64_unix returned a socket"),
            "{job:#}"
        );
    }
}

/// Loopback networking in every language, by address (the images' /etc/hosts is empty, so
/// `localhost` resolves nowhere, with or without netlink): listen, connect, exchange bytes. C and
/// Python also go through glibc's getaddrinfo with AI_ADDRCONFIG, the one common path that asks
/// netlink (which interfaces have addresses) and falls back to "both families" without it.
const LOOPBACK: &[(&str, &str)] = &[
    (
        "python",
        r#"
import socket
print('resolved', len(socket.getaddrinfo('127.0.0.1', 80, flags=socket.AI_ADDRCONFIG)))
server = socket.create_server(('127.0.0.1', 0))
client = socket.create_connection(server.getsockname())
conn, _ = server.accept()
client.sendall(b'ping')
print('loopback', conn.recv(4).decode())
"#,
    ),
    (
        "javascript",
        r#"
const net = require('net');
const server = net.createServer((s) => s.on('data', (d) => s.end(d)));
server.listen(0, '127.0.0.1', () => {
  const c = net.connect({ host: '127.0.0.1', port: server.address().port }, () => c.write('ping'));
  c.on('data', (d) => { console.log('loopback ' + d); c.destroy(); server.close(); });
});
"#,
    ),
    (
        "c",
        r#"
#include <errno.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res;
    int rc = getaddrinfo("127.0.0.1", "0", &hints, &res);
    if (rc) { printf("getaddrinfo: %s\n", gai_strerror(rc)); return 1; }
    int server = socket(res->ai_family, SOCK_STREAM, 0);
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    if (bind(server, res->ai_addr, res->ai_addrlen) || listen(server, 1) ||
        getsockname(server, (struct sockaddr *)&addr, &len)) { perror("listener"); return 1; }
    int client = socket(res->ai_family, SOCK_STREAM, 0);
    if (connect(client, (struct sockaddr *)&addr, len)) { perror("connect"); return 1; }
    int conn = accept(server, NULL, NULL);
    char buf[5] = {0};
    if (write(client, "ping", 4) != 4 || read(conn, buf, 4) != 4) { perror("exchange"); return 1; }
    printf("loopback %s\n", buf);
    struct ifaddrs *ifs;
    printf("getifaddrs %s\n", getifaddrs(&ifs) == 0 ? "listed" : strerror(errno));
    return 0;
}
"#,
    ),
    (
        "java",
        r#"
import java.io.DataInputStream;
import java.net.*;
public class Main {
    public static void main(String[] args) throws Exception {
        try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"));
             Socket client = new Socket("127.0.0.1", server.getLocalPort());
             Socket conn = server.accept()) {
            client.getOutputStream().write("ping".getBytes());
            byte[] b = new byte[4];
            new DataInputStream(conn.getInputStream()).readFully(b);
            System.out.println("loopback " + new String(b));
        }
    }
}
"#,
    ),
    (
        "go",
        r#"
package main

import (
	"fmt"
	"io"
	"net"
)

func main() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		c, err := l.Accept()
		if err == nil {
			io.Copy(c, c)
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		panic(err)
	}
	c.Write([]byte("ping"))
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil {
		panic(err)
	}
	fmt.Println("loopback", string(b))
}
"#,
    ),
    (
        "rust",
        r#"
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    client.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    conn.read_exact(&mut b).unwrap();
    println!("loopback {}", String::from_utf8_lossy(&b));
}
"#,
    ),
];

/// Denying AF_NETLINK costs ordinary networking nothing: every language listens and connects on
/// loopback, getaddrinfo with AI_ADDRCONFIG still answers. Only interface enumeration
/// (`getifaddrs`, `if_nameindex`, Go's `net.Interfaces`, Node's `os.networkInterfaces`) fails,
/// which in a container without a network would list nothing but `lo`.
#[tokio::test(flavor = "multi_thread")]
async fn loopback_networking_works_in_every_language_without_netlink() {
    let app = app();
    for (language, source) in LOOPBACK {
        let job = app.run_source(language, source, "").await;
        assert_verdict(&job, "ok");
        let out = stdout(&job);
        assert!(
            out.lines().any(|l| l == "loopback ping"),
            "{language}: {job:#}"
        );
        if *language == "c" {
            assert!(
                out.contains("getifaddrs Address family not supported by protocol"),
                "interface enumeration is what netlink's absence costs: {job:#}"
            );
        }
    }
}

/// The paths the containers mask (`pool/src/container_spec.rs`, `MASKED_PATHS`): the engine's
/// defaults and the host information it leaves readable. A masked file reads as empty, a masked
/// directory lists nothing; a path this kernel lacks does not exist.
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/proc/interrupts",
    "/sys/devices/virtual/powercap",
    "/proc/key-users",
    "/proc/cmdline",
    "/proc/softirqs",
    "/proc/pressure",
    "/proc/diskstats",
    "/proc/vmstat",
    "/proc/zoneinfo",
    "/proc/buddyinfo",
    "/proc/locks",
    "/proc/kallsyms",
    "/proc/sys/kernel/random/boot_id",
    "/sys/kernel/notes",
    "/sys/kernel/vmcoreinfo",
];

/// Prints, for each path of `paths`, what a job sees there: `dir N` entries, `file N` bytes or
/// `error E`.
const SHOW_PATHS: &str = r#"
import os
for p in paths:
    if os.path.isdir(p):
        print(p, 'dir', len(os.listdir(p)))
    else:
        try:
            print(p, 'file', len(open(p, 'rb').read()))
        except OSError as e:
            print(p, 'error', e.errno)
"#;

both_modes! {
    /// `/proc/key-users` lists the host's keyring users (uids and their key counts), and the
    /// kernel command line, boot id, interrupt, disk and memory counters and symbol table describe
    /// the host: all of them read as nothing, like the engine's own masked paths.
    async fn host_keyring_users_and_other_host_files_read_as_nothing(mode) {
        let src = format!("paths = {MASKED:?}\n{SHOW_PATHS}");
        let job = run_ok(&mode.lang("python"), &src).await;
        let out = stdout(&job);
        assert!(
            out.lines().any(|l| l == "/proc/key-users file 0"),
            "the host's keyring users are visible: {job:#}"
        );
        for path in MASKED {
            let line = out
                .lines()
                .find(|l| l.split(' ').next() == Some(path))
                .unwrap_or_else(|| panic!("no line for {path}: {job:#}"));
            let shown = line.strip_prefix(path).unwrap();
            assert!(
                [" dir 0", " file 0", " error 2"].contains(&shown),
                "{path} shows something: {job:#}"
            );
        }
    }
}
