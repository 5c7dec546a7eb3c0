//! Cross-job isolation: job A leaves something behind, then job B in the same container sees none
//! of it and is unaffected. Both run in a language with a pool of one container (see
//! `helpers::SOLO`), and each job prints its container's host name first, so every test proves
//! that A and B really shared a container (a retired container would fail it too: cleanup must
//! succeed in place, not by throwing the container away).

use crate::helpers::{app, assert_verdict, base_language, both_modes};
use serde_json::{json, Value};

/// Runs `source` in `language` (a solo language) with `limits` and returns the container's host
/// name and the rest of stdout. The job must succeed.
async fn run_solo(language: &str, source: &str, limits: Value) -> (String, String) {
    let prelude = match base_language(language) {
        "python_solo" => "import os as _os\nprint(_os.uname().nodename, flush=True)\n",
        "javascript_solo" => "console.log(require('os').hostname());\n",
        other => panic!("{other} is not a solo language"),
    };
    let job: Value = app()
        .run(
            json!({"language": language, "source": format!("{prelude}{source}"), "limits": limits}),
        )
        .await;
    assert_verdict(&job, "ok");
    let stdout = job["run"]["stdout"].as_str().unwrap();
    let (host, rest) = stdout.split_once('\n').unwrap();
    (host.to_string(), rest.to_string())
}

/// Runs A then B in `language` and returns both outputs after checking they shared a container.
async fn a_then_b(language: &str, a: &str, b: &str) -> (String, String) {
    a_then_b_with(language, (a, json!({})), b).await
}

/// [`a_then_b`] with limits for A.
async fn a_then_b_with(language: &str, a: (&str, Value), b: &str) -> (String, String) {
    let (host_a, out_a) = run_solo(language, a.0, a.1).await;
    let (host_b, out_b) = run_solo(language, b, json!({})).await;
    assert_eq!(
        host_a, host_b,
        "A and B must share a container; A printed {out_a:?}, B printed {out_b:?}"
    );
    (out_a, out_b)
}

both_modes! {
    async fn a_daemon_watching_proc_and_workspaces_is_gone(mode) {
        // A double-forks a session leader that ignores every catchable signal and keeps recording
        // what it can see of /proc and /work into /tmp.
        let a = r#"
import os, signal, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        while True:
            seen = []
            for p in os.listdir('/proc'):
                try: seen.append(open(f'/proc/{p}/cmdline', 'rb').read())
                except OSError: pass
            try: seen.append(str(os.listdir('/work')).encode())
            except OSError as e: seen.append(str(e).encode())
            with open('/tmp/spy.log', 'ab') as f: f.write(b'\n'.join(seen))
            time.sleep(0.05)
    os._exit(0)
time.sleep(0.3)
print('spying' if os.path.exists('/tmp/spy.log') else 'no spy')
"#;
        let b = r#"
import os
uid = os.getuid()
others = []
for p in os.listdir('/proc'):
    if p.isdigit():
        try:
            owner = os.stat(f'/proc/{p}').st_uid
        except OSError:
            continue
        if owner not in (0, uid):
            others.append((p, owner))
print('others', others)
print('spy log', os.path.exists('/tmp/spy.log'))
try: os.listdir('/work'); print('work listable')
except PermissionError: print('work unlistable')
"#;
        let (out_a, out_b) = a_then_b(&mode.lang("python_solo"), a, b).await;
        assert_eq!(out_a.trim(), "spying", "A's daemon must have run: {out_a}");
        assert!(
            out_b.contains("others []"),
            "a process of A survived: {out_b}"
        );
        assert!(out_b.contains("spy log False"), "{out_b}");
        assert!(out_b.contains("work unlistable"), "{out_b}");
    }
}

both_modes! {
    async fn files_left_in_tmp_shm_and_home_are_gone(mode) {
        let a = r#"
import os
for d in ('/tmp', '/dev/shm', '/var/tmp', os.environ['HOME']):
    try:
        open(f'{d}/left-by-a', 'w').write('secret')
        os.makedirs(f'{d}/.hidden/deeper', exist_ok=True)
        open(f'{d}/.hidden/deeper/x', 'w').write('secret')
        os.chmod(f'{d}/.hidden/deeper', 0)
        os.chmod(f'{d}/.hidden', 0)
        print('wrote', d)
    except OSError as e:
        print('denied', d, e.errno)
os.symlink('/etc/passwd', '/tmp/link-by-a')
os.mkfifo('/tmp/fifo-by-a')
print('home', os.environ['HOME'])
"#;
        let b = r#"
import os
print('tmp', sorted(os.listdir('/tmp')))
print('shm', sorted(os.listdir('/dev/shm')))
print('home', sorted(os.listdir(os.environ['HOME'])))
"#;
        let (out_a, out_b) = a_then_b(&mode.lang("python_solo"), a, b).await;
        assert!(
            out_a.contains("wrote /tmp") && out_a.contains("wrote /dev/shm"),
            "{out_a}"
        );
        assert!(out_a.contains("denied /var/tmp"), "read-only root: {out_a}");
        let home_a = out_a.lines().find_map(|l| l.strip_prefix("home ")).unwrap();
        assert!(out_b.contains("tmp []"), "{out_b}");
        assert!(out_b.contains("shm []"), "{out_b}");
        // B's own workspace holds only its source and the sandbox's directories.
        assert!(
            out_b.contains("home ['.cache', '.tmp', 'main.py']"),
            "{out_b}"
        );
        let (_, gone) = run_solo(
            &mode.lang("python_solo"),
            &format!("import os\nprint(os.path.lexists({home_a:?}))"),
            json!({}),
        )
        .await;
        assert_eq!(gone.trim(), "False", "A's workspace {home_a} still exists");
    }
}

both_modes! {
    async fn python_customization_hooks_left_by_a_never_run(mode) {
        let a = r#"
import os, site, sys
hook = "print('PWNED by ' + __file__)\n"
targets = [
    site.getusersitepackages() + '/usercustomize.py',
    site.getusersitepackages() + '/evil.pth',
    os.environ['HOME'] + '/sitecustomize.py',
    '/tmp/sitecustomize.py',
    '/tmp/usercustomize.py',
    '/usr/lib/python3/dist-packages/sitecustomize.py',
    sys.prefix + '/lib/python3.11/sitecustomize.py',
]
for t in targets:
    try:
        os.makedirs(os.path.dirname(t), exist_ok=True)
        open(t, 'w').write(hook if t.endswith('.py') else "import os; print('PWNED by pth')\n")
        print('planted', t)
    except OSError as e:
        print('denied', t, e.errno)
"#;
        let (out_a, out_b) = a_then_b(&mode.lang("python_solo"), a, "print('clean')").await;
        assert!(out_a.contains("planted /tmp/sitecustomize.py"), "{out_a}");
        assert!(
            out_a.contains("denied /usr/lib/python3/dist-packages/sitecustomize.py"),
            "{out_a}"
        );
        assert_eq!(out_b, "clean\n", "a hook of A ran in B");
    }
}

both_modes! {
    async fn node_modules_above_the_workspace_cannot_be_planted(mode) {
        // Node resolves `require('evil')` in every node_modules from the script's directory up to
        // the root, then in ~/.node_modules and ~/.node_libraries.
        let a = r#"
const fs = require('fs');
const home = process.env.HOME;
for (const dir of ['/work/node_modules', '/node_modules', '/tmp/node_modules',
                   home + '/node_modules', home + '/.node_modules']) {
  try {
    fs.mkdirSync(dir + '/evil', { recursive: true });
    fs.writeFileSync(dir + '/evil/index.js', "console.log('PWNED from " + dir + "')");
    console.log('planted', dir);
  } catch (e) { console.log('denied', dir, e.code); }
}
"#;
        let b = r#"
try { require('evil'); console.log('LOADED'); } catch (e) { console.log(e.code); }
console.log('NODE_PATH', process.env.NODE_PATH);
"#;
        let (out_a, out_b) = a_then_b(&mode.lang("javascript_solo"), a, b).await;
        assert!(out_a.contains("denied /work/node_modules"), "{out_a}");
        assert!(out_a.contains("denied /node_modules"), "{out_a}");
        assert!(out_b.contains("MODULE_NOT_FOUND"), "{out_b}");
        assert!(
            !out_b.contains("PWNED") && !out_b.contains("LOADED"),
            "{out_b}"
        );
        assert!(out_b.contains("NODE_PATH undefined"), "{out_b}");
    }
}

both_modes! {
    async fn sysv_ipc_objects_are_removed(mode) {
        let a = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
IPC_CREAT = 0o1000
shm = libc.shmget(0x5eed, 1 << 20, IPC_CREAT | 0o666)
addr = libc.shmat(shm, None, 0)
ctypes.memmove(addr, b'secret', 6)
msg = libc.msgget(0x5eed, IPC_CREAT | 0o666)
sem = libc.semget(0x5eed, 1, IPC_CREAT | 0o666)
print('created', shm >= 0, msg >= 0, sem >= 0)
"#;
        let b = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print('found', libc.shmget(0x5eed, 0, 0), libc.msgget(0x5eed, 0), libc.semget(0x5eed, 0, 0))
for table in ('shm', 'msg', 'sem'):
    print(table, len(open(f'/proc/sysvipc/{table}').read().splitlines()) - 1)
"#;
        let (out_a, out_b) = a_then_b(&mode.lang("python_solo"), a, b).await;
        assert_eq!(out_a.trim(), "created True True True", "{out_a}");
        assert!(out_b.contains("found -1 -1 -1"), "{out_b}");
        for table in ["shm 0", "msg 0", "sem 0"] {
            assert!(out_b.contains(table), "{table} expected: {out_b}");
        }
    }
}

both_modes! {
    async fn a_bound_port_is_released(mode) {
        // A leaves a detached listener on a loopback port that would let it talk to B.
        let a = r#"
import os, socket, time
if os.fork() == 0:
    os.setsid()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', 47001))
    s.listen()
    while True:
        c, _ = s.accept()
        c.sendall(b'hello from A')
        c.close()
time.sleep(0.3)
c = socket.create_connection(('127.0.0.1', 47001))
print('listening', c.recv(100) == b'hello from A')
"#;
        let b = r#"
import socket
try:
    socket.create_connection(('127.0.0.1', 47001), timeout=1); print('A still answers')
except OSError as e:
    print('nobody there', e.errno)
# SO_REUSEADDR: A's closed connections may leave TIME_WAIT entries on the port (TCP, not a
# leak); only a socket still listening on it would make this bind fail.
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 47001))
s.listen()
print('bound')
"#;
        let (out_a, out_b) = a_then_b(&mode.lang("python_solo"), a, b).await;
        assert_eq!(out_a.trim(), "listening True", "{out_a}");
        assert!(out_b.contains("nobody there 111"), "ECONNREFUSED: {out_b}");
        assert!(out_b.contains("bound"), "{out_b}");
    }
}

both_modes! {
    async fn a_full_tmpfs_is_emptied(mode) {
        // A fills its workspace, /tmp and /dev/shm to ENOSPC (several files: one file is capped at
        // RLIMIT_FSIZE) and ends normally; B then has the space it would have had anyway. tmpfs
        // pages are charged to the container's memory, so A gets room for all three.
        let a = r#"
import os
chunk = b'x' * (1 << 20)
def fill(d):
    n = 0
    try:
        for i in range(1000):
            with open(f'{d}/fill{i}', 'wb') as f:
                for _ in range(32):
                    f.write(chunk); n += 1
    except OSError as e:
        return (n, e.errno)
    return (n, None)
for d in (os.environ['HOME'], '/tmp', '/dev/shm'):
    print(d.split('/')[1], *fill(d))
"#;
        let b = r#"
import os
chunk = b'y' * (1 << 20)
for d in (os.environ['HOME'], '/tmp', '/dev/shm'):
    st = os.statvfs(d)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize >> 20
    with open(f'{d}/mine', 'wb') as f:
        for _ in range(8): f.write(chunk)
    print(d.split('/')[1], 'used_mb_before', used, 'wrote 8')
"#;
        let (out_a, out_b) = a_then_b_with(&mode.lang("python_solo"), (a, json!({"memory_mb": 512})), b).await;
        // errno 28 is ENOSPC: A really filled every one of them.
        assert_eq!(out_a.matches(" 28\n").count(), 3, "{out_a}");
        for line in out_b.lines() {
            let used: u64 = line.split(' ').nth(2).unwrap().parse().unwrap();
            assert!(used <= 1, "space of A still in use: {out_b}");
            assert!(line.ends_with("wrote 8"), "{out_b}");
        }
        assert_eq!(out_b.lines().count(), 3, "{out_b}");
    }
}
