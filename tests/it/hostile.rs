//! Hostile programs: each ends within its limits with the right verdict, and the next job in the
//! same language still succeeds (the container was left healthy or replaced).

use crate::helpers::{app, assert_verdict, base_language, both_modes};
use serde_json::{json, Value};

/// Runs `source` with `limits`, checks the verdict, then checks a plain job still works.
async fn contained(language: &str, source: &str, limits: Value, verdicts: &[&str]) -> Value {
    let app = app();
    let job = app
        .run(json!({"language": language, "source": source, "limits": limits}))
        .await;
    let verdict = job["verdict"].as_str().unwrap_or_default();
    assert!(
        verdicts.contains(&verdict),
        "verdict {verdict} not in {verdicts:?}: {job:#}"
    );
    let wall = job["run"]["wall_ms"].as_u64().unwrap_or(0);
    let limit = limits["wall_time_ms"].as_u64().unwrap_or(5000);
    assert!(wall <= limit + 1000, "ran past its wall limit: {job:#}");
    for _ in 0..2 {
        let next = app.run_source(language, hello(language), "").await;
        assert_verdict(&next, "ok");
    }
    job
}

fn hello(language: &str) -> &'static str {
    match base_language(language) {
        "python" => "print('ok')",
        "bash" => "echo ok",
        "c" => "int main(void){return 0;}",
        other => panic!("no hello for {other}"),
    }
}

both_modes! {
    async fn fork_bomb(mode) {
        contained(
            &mode.lang("bash"),
            ":(){ :|:& };:",
            json!({"wall_time_ms": 2000, "processes": 32}),
            &["time_limit_exceeded", "runtime_error", "ok"],
        )
        .await;
    }
}

both_modes! {
    async fn thread_bomb(mode) {
        let src = "#include <pthread.h>\n#include <unistd.h>\nvoid*f(void*a){pause();return a;}\n\
               int main(void){pthread_t t;for(;;)pthread_create(&t,0,f,0);}";
        contained(
            &mode.lang("c"),
            src,
            json!({"wall_time_ms": 2000, "processes": 32}),
            &["time_limit_exceeded"],
        )
        .await;
    }
}

both_modes! {
    async fn memory_bomb_spread_over_processes(mode) {
        let src = "import os, time\nfor _ in range(8):\n    if os.fork() == 0:\n        x = bytearray(40 * 1024 * 1024)\n        time.sleep(10)\n        os._exit(0)\ntime.sleep(10)";
        contained(
            &mode.lang("python"),
            src,
            json!({"memory_mb": 128, "wall_time_ms": 4000}),
            &["memory_limit_exceeded"],
        )
        .await;
    }
}

both_modes! {
    async fn signal_ignoring_loop(mode) {
        let src = "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):\n    signal.signal(s, signal.SIG_IGN)\nwhile True: pass";
        contained(
            &mode.lang("python"),
            src,
            json!({"cpu_time_ms": 1000, "wall_time_ms": 3000}),
            &["time_limit_exceeded"],
        )
        .await;
    }
}

both_modes! {
    async fn blocking_read_of_stdin(mode) {
        contained(
            &mode.lang("python"),
            "import sys\nsys.stdin.read()\nimport time\ntime.sleep(100)",
            json!({"wall_time_ms": 1000}),
            &["time_limit_exceeded"],
        )
        .await;
    }
}

both_modes! {
    async fn output_flood_without_newlines_on_stderr(mode) {
        let job = contained(
            &mode.lang("python"),
            "import sys\nwhile True: sys.stderr.write('x' * 4096)",
            json!({"output_bytes": 5000}),
            &["output_limit_exceeded"],
        )
        .await;
        assert_eq!(
            job["run"]["stderr"].as_str().unwrap().len(),
            5000,
            "{job:#}"
        );
    }
}

both_modes! {
    async fn disk_fill(mode) {
        let src = "f = open('fill', 'wb')\nwhile True: f.write(b'x' * 1048576)";
        contained(
            &mode.lang("python"),
            src,
            json!({"wall_time_ms": 5000}),
            &["runtime_error"],
        )
        .await;
    }
}

both_modes! {
    async fn inode_fill(mode) {
        let src = "import os\ni = 0\nwhile True:\n    open(f'/tmp/f{i}', 'w').close()\n    i += 1";
        contained(
            &mode.lang("python"),
            src,
            json!({"wall_time_ms": 5000}),
            &["runtime_error", "time_limit_exceeded"],
        )
        .await;
    }
}

both_modes! {
    async fn fd_exhaustion(mode) {
        let src = "fs = []\nwhile True: fs.append(open('/dev/null'))";
        let job = contained(&mode.lang("python"), src, json!({}), &["runtime_error"]).await;
        assert!(
            job["run"]["stderr"]
                .as_str()
                .unwrap()
                .contains("Too many open files"),
            "{job:#}"
        );
    }
}

both_modes! {
    async fn zombie_factory(mode) {
        let src = "#include <unistd.h>\nint main(void){for(int i=0;i<2000;i++){if(fork()==0)_exit(0);}sleep(1);return 0;}";
        contained(
            &mode.lang("c"),
            src,
            json!({"wall_time_ms": 3000, "processes": 64}),
            &["ok", "runtime_error"],
        )
        .await;
    }
}

both_modes! {
    async fn daemon_that_outlives_the_job_is_killed(mode) {
        let app = app();
        let job = app
            .run(json!({"language": mode.lang("bash"), "source": "setsid bash -c 'sleep 1000' </dev/null >/dev/null 2>&1 &\necho started"}))
            .await;
        assert_verdict(&job, "ok");
        // Whatever container runs the next bash jobs, no process of an earlier job is visible.
        for _ in 0..3 {
            let ps = app
                .run_source(
                    &mode.lang("bash"),
                    "for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr '\\0' ' '; echo; done",
                    "",
                )
                .await;
            assert_verdict(&ps, "ok");
            assert!(
                !ps["run"]["stdout"].as_str().unwrap().contains("sleep 1000"),
                "{ps:#}"
            );
        }
    }
}

both_modes! {
    /// Output that looks like the shim's own protocol (a record, the agent's `done`, a job line)
    /// is only output: the shim relays it inside its own messages, and the next job is fine.
    async fn forged_protocol_lines_are_just_output(mode) {
        let forged = concat!(
            r#"{"type":"record","job_id":"x","steps":[],"clean":true}"#,
            "\n",
            r#"{"type":"done"}"#,
            "\n",
            r#"{"schema":1,"job_id":"y","uid":0,"files":[],"steps":[]}"#,
            "\n",
        );
        let app = app();
        let job = app
            .run(json!({"language": mode.lang("bash"), "source": "cat", "stdin": forged}))
            .await;
        assert_verdict(&job, "ok");
        assert_eq!(job["run"]["stdout"], forged, "{job:#}");
        let next = app.run_source(&mode.lang("bash"), "echo ok", "").await;
        assert_verdict(&next, "ok");
        assert_eq!(next["run"]["stdout"], "ok\n");
    }
}

both_modes! {
    async fn kernel_attack_surface_is_denied(mode) {
        // Raw syscalls through ctypes: io_uring (allowed by the engine's default profile), new user
        // and mount namespaces, userfaultfd, bpf. Each must fail with EPERM and leave no trace.
        let src = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def attempt(name, nr, *args):
    r = libc.syscall(nr, *args)
    print(name, r, os.strerror(ctypes.get_errno()) if r < 0 else "ALLOWED")
params = ctypes.create_string_buffer(120)
attempt("io_uring_setup", 425, 4, params)
attempt("unshare_user", 272, 0x10000000)
attempt("unshare_mount", 272, 0x00020000)
attempt("userfaultfd", 323, 0)
attempt("bpf", 321, 0, 0, 0)
attempt("keyctl", 250, 0, 0)
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print("fork", "works")
"#;
        let job = app().run_source(&mode.lang("python"), src, "").await;
        assert_verdict(&job, "ok");
        let out = job["run"]["stdout"].as_str().unwrap();
        for name in [
            "io_uring_setup",
            "unshare_user",
            "unshare_mount",
            "userfaultfd",
            "bpf",
            "keyctl",
        ] {
            let line = out
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_default();
            assert!(
                line.contains("-1 Operation not permitted"),
                "{name} not denied: {line:?} in {job:#}"
            );
        }
        assert!(
            out.contains("fork works"),
            "ordinary process creation still works: {job:#}"
        );
    }
}

/// A compile bomb: the compile step ends within its own limits as `compile_error`, its stderr
/// shows the compiler was stopped (`evidence`) or the sandbox killed it, and the language's next
/// job compiles and runs.
async fn compile_bomb(language: &str, source: &str, evidence: &str) -> Value {
    let app = app();
    let job = app.run_source(language, source, "").await;
    assert_verdict(&job, "compile_error");
    let compile_wall = job["compile"]["wall_ms"].as_u64().unwrap();
    assert!(
        compile_wall <= 20_000 + 1_000,
        "compile ran past its wall limit: {job:#}"
    );
    // Stopped by the memory limit (the driver reports its killed child, or the step cgroup's
    // peak is at the compile limit: the shim ends the whole step at its first OOM kill), or, on
    // a loaded machine where the compiler is slower to grow, by the wall limit.
    let compile_limit_kb = rce_protocol::topology::Topology::from_source_tree()
        .unwrap()
        .language(crate::helpers::base_language(language))
        .unwrap()
        .compile_limits
        .memory_mb
        * 1024;
    let by_memory = job["compile"]["stderr"]
        .as_str()
        .unwrap()
        .contains(evidence)
        || job["compile"]["memory_kb"].as_u64() == Some(compile_limit_kb);
    let by_wall = job["compile"]["signal"] == "SIGKILL" && compile_wall >= 20_000;
    assert!(
        by_memory || by_wall,
        "the compiler was not stopped by a limit: {job:#}"
    );
    let hello = match base_language(language) {
        "c" => "#include <stdio.h>\nint main(void){puts(\"ok\");return 0;}",
        _ => "#include <cstdio>\nint main(){std::puts(\"ok\");}",
    };
    let next = app.run_source(language, hello, "").await;
    assert_verdict(&next, "ok");
    job
}

both_modes! {
    async fn compile_bomb_including_dev_urandom(mode) {
        // The preprocessor reads an endless device: it must be stopped by the compile step's memory
        // or time limit, not by the machine running out of either.
        compile_bomb(
            &mode.lang("c"),
            "#include </dev/urandom>\nint main(void){return 0;}",
            "Killed signal terminated program cc1",
        )
        .await;
    }
}

both_modes! {
    async fn compile_bomb_template_explosion(mode) {
        // Every level instantiates two new distinct templates: 2^40 instantiations, each a few
        // hundred bytes of compiler memory. Valid C++: without limits it would compile for ages.
        let src = "template<int N, unsigned long long K> struct A {\n\
                 static const unsigned long long v = A<N - 1, 2 * K>::v + A<N - 1, 2 * K + 1>::v;\n\
               };\n\
               template<unsigned long long K> struct A<0, K> { static const unsigned long long v = K; };\n\
               int main() { return (int)(A<40, 1>::v & 1); }";
        compile_bomb(&mode.lang("cpp"), src, "Killed signal terminated program cc1plus").await;
    }
}

both_modes! {
    async fn compile_bomb_huge_static_array(mode) {
        // A gigabyte of initialised data: the assembler's output is capped by RLIMIT_FSIZE and the
        // workspace's size, the compiler by its memory limit.
        let job = compile_bomb(
            &mode.lang("c"),
            "char big[1 << 30] = {1};\nint main(void){return big[0] - 1;}",
            "File size limit exceeded",
        )
        .await;
        assert!(
            job["run"].is_null(),
            "nothing ran after a failed compile: {job:#}"
        );
    }
}
