//! Jobs that make many directories fast (a 90 x 90 tree, one level of 8,100 non-empty
//! directories, a chain 5,000 deep) under a short wall limit: each ends with its own verdict, and
//! its container is cleaned in place, in time. The runner grants the shim the steps' wall limits
//! plus `SHIM_MARGIN_MS` (5 s) for the whole job, cleanup included; a cleanup that reread a
//! directory after each non-empty child spent seconds on 8,100 siblings, kept the container busy
//! for most of that margin or past it, and the runner destroyed it. Each job prints its
//! container's host name first, and a job that later prints the same one proves the container
//! survived (a replacement has a new name). The `python_solo` tests (a pool of one container)
//! check that the very next job runs there, and soon; the C and Bash ones, whose pools hold two,
//! look for the host name among the jobs run soon after.
//!
//! `make test` runs these alone, one at a time, after the rest (scripts/test.sh): the cleanup
//! budget is wall time, and with the other tests' jobs saturating two cores an 8,100-directory
//! cleanup ran past it (the container was then replaced, as it should be), so under that load
//! these would measure the load, not the cleanup.

use crate::helpers::{app, assert_verdict, base_language, both_modes, TestApp};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The short wall limit the tree-making jobs run under: the runner's deadline for them is this
/// plus the 5 s margin (plus the compile limit for C).
const WALL_MS: u64 = 1000;
/// Bash's three `mkdir`s need about 1 s of CPU, which a loaded 2-core machine stretched past a
/// 2 s wall limit (CI): ample room, since the verdict is not what these tests check; how soon
/// the container is back ([`BACK_WITHIN`]) still bounds the cleanup.
const BASH_WALL_MS: u64 = 10_000;

/// How soon the container of a tree-making job must run another job: its cleanup (a fraction
/// of a second) and that job. Less than the runner's margin, which a cleanup that rereads
/// directories came close to or overran.
const BACK_WITHIN: Duration = Duration::from_secs(4);

/// The first line a job of `language` prints: its container's host name.
fn host_prelude(language: &str) -> &'static str {
    match base_language(language) {
        "python_solo" => "import os\nprint(os.uname().nodename, flush=True)\n",
        "bash" => "echo \"$HOSTNAME\"\n",
        other => panic!("no prelude for {other}"),
    }
}

/// Runs `source` under `wall_ms` and returns the host name it printed and the whole job.
async fn run_for_host(
    app: &TestApp,
    language: &str,
    source: &str,
    wall_ms: u64,
) -> (String, Value) {
    let job = app
        .run(json!({"language": language, "source": source, "limits": {"wall_time_ms": wall_ms}}))
        .await;
    let stdout = job["run"]["stdout"].as_str().unwrap_or_default();
    let host = stdout.lines().next().unwrap_or_default().to_string();
    assert!(!host.is_empty(), "no host name: {job:#}");
    (host, job)
}

/// A `python_solo` job A that makes `tree`, then the next job B: B must run in A's container
/// (so A's cleanup succeeded in place and in time) and come back soon.
async fn solo_then_next(language: &str, tree: &str) {
    let app = app();
    let source = format!(
        "{}{tree}\nprint('made', flush=True)\n",
        host_prelude(language)
    );
    let (host_a, a) = run_for_host(&app, language, &source, WALL_MS).await;
    assert_verdict(&a, "ok");
    assert!(
        a["run"]["stdout"].as_str().unwrap().contains("made"),
        "{a:#}"
    );
    let started = Instant::now();
    let (host_b, b) = run_for_host(&app, language, host_prelude(language), WALL_MS).await;
    let took = started.elapsed();
    assert_verdict(&b, "ok");
    assert_eq!(
        host_a, host_b,
        "the next job ran in another container: A's was destroyed (its cleanup overran the \
         runner's deadline or was unclean); A: {a:#}"
    );
    // B waited for A's cleanup (the container is busy until then) and ran; seconds more would
    // mean a cleanup close to the runner's deadline.
    assert!(took < BACK_WITHIN, "the next job took {took:?}: {b:#}");
    eprintln!(
        "{language}: the tree took {} ms of the job's {WALL_MS} ms; the job after it answered \
         in {took:?}",
        a["run"]["wall_ms"]
    );
}

both_modes! {
    /// In `python_solo`: 90 directories of 90 in the workspace.
    async fn a_90_by_90_tree_is_cleaned_in_place(mode) {
        let tree = "for i in range(90):\n    for j in range(90):\n        os.makedirs(f'd{i}/e{j}')";
        solo_then_next(&mode.lang("python_solo"), tree).await;
    }
}

both_modes! {
    /// In `python_solo`: one level of 8,100 directories, each holding a hard link to one file (so
    /// none is empty, at one inode each), in a directory in /tmp, which the shared-directory sweep
    /// removes.
    async fn a_flat_level_of_8100_in_tmp_is_cleaned_in_place(mode) {
        let tree = "os.mkdir('/tmp/x')\nos.chdir('/tmp/x')\nopen('f', 'w').close()\n\
                    for i in range(8100):\n    os.mkdir(f'd{i}')\n    os.link('f', f'd{i}/f')";
        solo_then_next(&mode.lang("python_solo"), tree).await;
    }
}

both_modes! {
    /// In `python_solo`: 8,100 non-empty directories side by side in the workspace: the case the
    /// rereading cleanup spent seconds on.
    async fn a_flat_level_of_8100_in_the_workspace_is_cleaned_in_place(mode) {
        let tree = "open('f', 'w').close()\n\
                    for i in range(8100):\n    os.mkdir(f'd{i}')\n    os.link('f', f'd{i}/f')";
        solo_then_next(&mode.lang("python_solo"), tree).await;
    }
}

both_modes! {
    /// In `python_solo`: a chain of 5,000 directories (far deeper than a path can name), the
    /// deepest one closed (mode 000) with a file inside.
    async fn a_chain_5000_deep_is_cleaned_in_place(mode) {
        let tree = "for _ in range(5000):\n    os.mkdir('d')\n    os.chdir('d')\n\
                    os.mkdir('closed')\nopen('closed/f', 'w').close()\nos.chmod('closed', 0)";
        solo_then_next(&mode.lang("python_solo"), tree).await;
    }
}

/// A job A in `language` (a pool of several containers) that printed `host_a`: the container
/// must come back to the pool soon, so one of the jobs run after A within [`BACK_WITHIN`] runs
/// in it (the pool hands out its idle containers in turn).
async fn container_comes_back(app: &TestApp, language: &str, host_a: &str, next: &str) {
    let started = Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < BACK_WITHIN {
        let (host, job) = run_for_host(app, language, next, WALL_MS).await;
        assert_verdict(&job, "ok");
        if host == host_a {
            eprintln!(
                "{language}: A's container ran job {} after it, {:?} later",
                seen.len() + 1,
                started.elapsed()
            );
            return;
        }
        seen.push(host);
    }
    panic!(
        "A's container ({host_a}) did not come back within {BACK_WITHIN:?} (destroyed, or still \
         cleaning up); the {} jobs after it ran in {seen:?}",
        seen.len()
    );
}

both_modes! {
    /// C, which makes directories as fast as the kernel does: the three shapes in one job (the tree
    /// and the chain in the workspace, the flat level in /tmp/x), then it sleeps into its wall
    /// limit.
    async fn c_makes_all_three_shapes_and_times_out(mode) {
        let language = mode.lang("c");
        let prelude = r#"
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>
static void must(int ok, const char *what) { if (!ok) { perror(what); exit(1); } }
static void print_host(void) {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    printf("%s\n", host);
    fflush(stdout);
}
"#;
        let main = r#"
int main(void) {
    char name[64];
    print_host();
    for (int i = 0; i < 90; i++) {
        snprintf(name, sizeof name, "t%d", i);
        must(mkdir(name, 0700) == 0, "mkdir tree");
        for (int j = 0; j < 90; j++) {
            snprintf(name, sizeof name, "t%d/e%d", i, j);
            must(mkdir(name, 0700) == 0, "mkdir tree leaf");
        }
    }
    int ws = open(".", O_RDONLY | O_DIRECTORY);
    must(ws >= 0, "open .");
    must(mkdir("/tmp/x", 0700) == 0 && chdir("/tmp/x") == 0, "chdir /tmp/x");
    int f = open("f", O_CREAT | O_WRONLY, 0600);
    must(f >= 0, "create f");
    close(f);
    for (int i = 0; i < 8100; i++) {
        snprintf(name, sizeof name, "d%d", i);
        must(mkdir(name, 0700) == 0, "mkdir flat");
        snprintf(name, sizeof name, "d%d/f", i);
        must(link("f", name) == 0, "link");
    }
    must(fchdir(ws) == 0, "back to the workspace");
    for (int i = 0; i < 5000; i++) {
        must(mkdir("c", 0700) == 0, "mkdir chain");
        must(chdir("c") == 0, "chdir chain");
    }
    printf("made\n");
    fflush(stdout);
    for (;;) pause();
}
"#;
        let app = app();
        let (host_a, a) =
            run_for_host(&app, &language, &format!("{prelude}{main}"), WALL_MS).await;
        assert_verdict(&a, "time_limit_exceeded");
        assert!(a["run"]["stdout"].as_str().unwrap().contains("made"), "{a:#}");
        eprintln!("{language}: the job ran {} ms", a["run"]["wall_ms"]);
        let next = format!("{prelude}int main(void) {{ print_host(); return 0; }}\n");
        container_comes_back(&app, &language, &host_a, &next).await;
    }
}

both_modes! {
    /// Bash, with brace expansion: one `mkdir` process per shape, the tree in the workspace, the
    /// flat level (8,100 directories holding one each) in /dev/shm/x (the inode cap of /work leaves
    /// no room for both), then a chain of 5,000 in the workspace, made 1,000 at a time.
    async fn bash_makes_a_tree_a_flat_level_and_a_chain(mode) {
        let language = mode.lang("bash");
        let source = format!(
            "{}set -e\n\
             mkdir -p t{{1..90}}/e{{1..90}}\n\
             (cd /dev/shm && mkdir -p x/f{{1..8100}}/e)\n\
             p=$(printf 'd/%.0s' {{1..1000}})\n\
             for i in 1 2 3 4 5; do mkdir -p \"$p\"; cd \"$p\"; done\n\
             echo made\n",
            host_prelude(&language)
        );
        let app = app();
        let (host_a, a) = run_for_host(&app, &language, &source, BASH_WALL_MS).await;
        assert_verdict(&a, "ok");
        assert!(a["run"]["stdout"].as_str().unwrap().contains("made"), "{a:#}");
        eprintln!("{language}: the trees took {} ms", a["run"]["wall_ms"]);
        container_comes_back(&app, &language, &host_a, host_prelude(&language)).await;
    }
}
