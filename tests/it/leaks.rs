//! Information leaks: what a job can see of the host, the runner, the engine and the network.
//! None of these tests sends a packet anywhere: network isolation is checked by the absence of
//! any interface but loopback.

use crate::helpers::{app, assert_verdict, both_modes, Mode};

async fn python(mode: Mode, src: &str) -> serde_json::Value {
    let job = app().run_source(&mode.lang("python"), src, "").await;
    assert_verdict(&job, "ok");
    job
}

fn stdout(job: &serde_json::Value) -> &str {
    job["run"]["stdout"].as_str().unwrap()
}

both_modes! {
    async fn environment_is_an_explicit_allowlist(mode) {
        let job = python(mode, "import os\nfor k in sorted(os.environ): print(k)").await;
        let allowed = [
            "HOME",
            "LANG",
            "LC_ALL",
            "PATH",
            "PYTHONDONTWRITEBYTECODE",
            "PYTHONNOUSERSITE",
            "PYTHONSAFEPATH",
            "TMPDIR",
            "XDG_CACHE_HOME",
        ];
        for key in stdout(&job).lines() {
            assert!(
                allowed.contains(&key),
                "{key} leaked into the job's environment: {job:#}"
            );
        }
        let home = python(mode, "import os\nprint(os.environ['HOME'], os.getcwd())").await;
        let line = stdout(&home).trim().to_string();
        let (home_dir, cwd) = line.split_once(' ').unwrap();
        assert_eq!(home_dir, cwd, "HOME is the workspace");
        assert!(
            cwd.starts_with("/work/") && cwd.len() > "/work/".len() + 16,
            "unpredictable workspace name: {cwd}"
        );
    }
}

both_modes! {
    async fn the_init_process_and_its_environment_are_out_of_reach(mode) {
        let job = python(mode,
            "import os\ntry:\n    open('/proc/1/environ').read(); print('READ')\nexcept OSError as e: print('denied', e.errno)\n\
         try:\n    os.kill(1, 9); print('KILLED')\nexcept OSError as e: print('denied', e.errno)\nprint(os.getuid(), os.geteuid())",
        )
        .await;
        let out = stdout(&job);
        assert!(!out.contains("READ") && !out.contains("KILLED"), "{job:#}");
        let ids: Vec<u32> = out
            .lines()
            .last()
            .unwrap()
            .split(' ')
            .map(|n| n.parse().unwrap())
            .collect();
        assert!(
            ids.iter().all(|&id| id >= 20000),
            "the job is not root: {ids:?}"
        );
    }
}

both_modes! {
    async fn no_docker_socket_no_network_no_new_privileges(mode) {
        let job = python(mode,
            "import os\nprint('sock', any(os.path.exists(p) for p in ['/var/run/docker.sock', '/run/docker.sock']))\n\
         print('ifaces', sorted(os.listdir('/sys/class/net')))\n\
         print([l for l in open('/proc/self/status') if l.startswith(('NoNewPrivs', 'CapEff', 'Seccomp:'))])",
        )
        .await;
        let out = stdout(&job);
        assert!(out.contains("sock False"), "{job:#}");
        assert!(
            out.contains("ifaces ['lo']"),
            "only loopback, so no egress is possible: {job:#}"
        );
        assert!(out.contains("NoNewPrivs:\\t1"), "{job:#}");
        assert!(
            out.contains("CapEff:\\t0000000000000000"),
            "no capabilities at all: {job:#}"
        );
        assert!(
            out.contains("Seccomp:\\t2"),
            "a seccomp filter is active: {job:#}"
        );
    }
}

both_modes! {
    async fn read_only_paths_devices_and_kernel_interfaces(mode) {
        let src = r#"
import os
for path in ['/etc/evil', '/usr/bin/evil', '/work/evil', '/proc/sys/kernel/hostname', '/sys/kernel/evil', '/evil']:
    try:
        with open(path, 'w') as f:
            f.write('x')
        print('WROTE', path)
    except OSError as e:
        print('denied', path)
for path in ['/proc/kcore', '/dev/mem', '/dev/kmsg', '/dev/sda', '/proc/sysrq-trigger']:
    try:
        open(path, 'rb').read(1); print('READ', path)
    except OSError:
        print('denied', path)
print('devices', sorted(os.listdir('/dev')))
"#;
        let job = python(mode, src).await;
        let out = stdout(&job);
        assert!(!out.contains("WROTE") && !out.contains("READ"), "{job:#}");
        for dangerous in ["'mem'", "'kmsg'", "'sda'", "'kcore'"] {
            assert!(!out.contains(dangerous), "{dangerous} exposed: {job:#}");
        }
    }
}

both_modes! {
    async fn other_processes_cannot_be_traced(mode) {
        let src = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
r = libc.ptrace(16, 1, 0, 0)  # PTRACE_ATTACH to the init process
print('ptrace', r, ctypes.get_errno())
"#;
        let job = python(mode, src).await;
        assert!(
            stdout(&job).contains("ptrace -1 1"),
            "EPERM expected: {job:#}"
        );
    }
}

both_modes! {
    async fn the_init_process_is_not_writable_and_there_is_no_tty(mode) {
        let src = r#"
import os
for path in ['/proc/1/mem', '/proc/1/attr/current', '/proc/1/oom_score_adj', '/proc/1/root/etc/evil']:
    try:
        with open(path, 'wb', buffering=0) as f:
            f.write(b'x')
        print('WROTE', path)
    except OSError as e:
        print('denied', path)
print('isatty', [os.isatty(fd) for fd in (0, 1, 2)])
try:
    open('/dev/tty'); print('TTY')
except OSError as e:
    print('no tty', e.errno)
print('ctty', open('/proc/self/stat').read().rsplit(')', 1)[1].split()[4])
"#;
        let job = python(mode, src).await;
        let out = stdout(&job);
        assert!(!out.contains("WROTE") && !out.contains("TTY"), "{job:#}");
        assert!(
            out.contains("isatty [False, False, False]"),
            "stdio are pipes: {job:#}"
        );
        assert!(out.contains("ctty 0"), "no controlling terminal: {job:#}");
    }
}

both_modes! {
    async fn no_egress_by_address_or_by_name(mode) {
        // No interface but loopback: a connect fails locally without a packet leaving.
        let src = r#"
import socket
for addr in [('1.1.1.1', 53), ('8.8.8.8', 443), ('10.0.0.1', 80)]:
    try:
        socket.create_connection(addr, timeout=2); print('CONNECTED', addr)
    except OSError as e:
        print('unreachable', addr[0], e.errno)
try:
    socket.getaddrinfo('example.com', 443); print('RESOLVED')
except OSError as e:
    print('no dns', type(e).__name__)
"#;
        let job = python(mode, src).await;
        let out = stdout(&job);
        assert!(
            !out.contains("CONNECTED") && !out.contains("RESOLVED"),
            "{job:#}"
        );
        assert_eq!(out.matches("unreachable").count(), 3, "{job:#}");
        assert!(out.contains("no dns"), "{job:#}");
    }
}

both_modes! {
    async fn mounts_and_setuid_binaries_give_nothing(mode) {
        // mount(2) directly, then the setuid-root helpers of the base system: with no-new-privileges
        // they run as the job's uid and fail.
        let src = r#"
import ctypes, os, subprocess
os.mkdir('m')
libc = ctypes.CDLL(None, use_errno=True)
r = libc.mount(b'none', b'm', b'tmpfs', 0, None)
print('mount(2)', r, ctypes.get_errno())
found = subprocess.run('find / -xdev -perm -4000 -type f', shell=True, capture_output=True, text=True)
print('setuid', found.stdout.split())
for name, argv in [('mount(8)', ['mount', '-t', 'tmpfs', 'none', 'm']),
                   ('su', ['su', '-c', 'id', 'root']),
                   ('unshare', ['unshare', '-r', 'id']),
                   ('newgrp', ['newgrp', 'root'])]:
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=5)
    print(name, 'SUCCEEDED' if p.returncode == 0 else 'failed')
print(os.getuid())
"#;
        let job = python(mode, src).await;
        let out = stdout(&job);
        assert!(out.contains("mount(2) -1 1"), "EPERM expected: {job:#}");
        assert!(
            out.contains("/usr/bin/su"),
            "the image does have setuid binaries to try: {job:#}"
        );
        assert!(!out.contains("SUCCEEDED"), "{job:#}");
        let uid: u32 = out.lines().last().unwrap().parse().unwrap();
        assert!(uid >= 20000, "{job:#}");
    }
}

both_modes! {
    /// The runner's stream to the shim (the agent's stdin and stdout in agent mode, the exec'd
    /// shim's in exec mode) belongs to root processes: a job can neither inject a job line nor
    /// forge a record through /proc/<pid>/fd.
    async fn the_shims_stream_is_out_of_reach(mode) {
        let src = r#"
import os
me = os.getuid()
others, reached = 0, []
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        if os.stat(f'/proc/{pid}').st_uid == me:
            continue
    except OSError:
        continue
    others += 1
    for fd in ('0', '1', '2'):
        for flags in (os.O_WRONLY, os.O_RDONLY):
            try:
                os.close(os.open(f'/proc/{pid}/fd/{fd}', flags | os.O_NONBLOCK))
                reached.append(f'{pid}/{fd}')
            except OSError:
                pass
print('others', others)
print('reached', reached)
"#;
        let job = python(mode, src).await;
        let out = stdout(&job);
        let others: u32 = out
            .lines()
            .find_map(|l| l.strip_prefix("others "))
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(others >= 2, "the container's init and shim are visible: {job:#}");
        assert!(out.contains("reached []"), "{job:#}");
    }
}

both_modes! {
    /// The mode tests really run where they say: the container's main process is the agent in
    /// agent mode, the idle shim (next to the exec'd one) in exec mode.
    async fn each_mode_runs_its_own_shim(mode) {
        let src = "import glob\nfor p in sorted(glob.glob('/proc/[0-9]*/cmdline')):\n    \
                   print(open(p, 'rb').read().replace(b'\\0', b' ').decode().strip())";
        let job = python(mode, src).await;
        let out = stdout(&job);
        let (present, absent) = match mode {
            Mode::Agent => ("rce-shim agent", "rce-shim idle"),
            Mode::Exec => ("rce-shim exec", "rce-shim agent"),
        };
        assert!(out.contains(present), "{present} missing: {out}");
        assert!(!out.contains(absent), "{absent} present: {out}");
    }
}
