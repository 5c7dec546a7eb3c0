//! Judge mode in a real warm container, below the API (which does not take tests yet): the
//! program is built once, each test runs from the sealed artifact in a fresh workspace, and
//! nothing one test leaves (a file in the workspace or /tmp, a daemon) reaches the next. A pool
//! of its own (runner id `judge-it`, uid blocks of runner index 5), removed at the end.

use rce_pool::cgroup_delegation::CgroupDelegation;
use rce_pool::job_plan::UidRange;
use rce_pool::{JobChannels, Pools};
use rce_protocol::bytes::Base64Bytes;
use rce_protocol::job::{JobFile, JobMessage};
use rce_protocol::shim::{ShimRecord, ShimTest, StepLimits, Termination};
use rce_protocol::topology::Topology;
use std::path::Path;

const RUNNER: &str = "judge-it";

async fn pools(languages: &[&str]) -> Pools {
    let topology = Topology::from_source_tree().unwrap();
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let cgroups = CgroupDelegation::detect(&docker, Path::new("/sys/fs/cgroup"), RUNNER)
        .await
        .unwrap();
    // Index 5 of the default 1,024 blocks: apart from `make up` (0), the shared test runner (1),
    // the benchmarks (2), the fault tests (3) and the fuzz run (4).
    let uids = UidRange::for_runner(&topology.sandbox, 5, 1024).unwrap();
    let languages: Vec<String> = languages.iter().map(|l| l.to_string()).collect();
    let pools = Pools::new(docker, &topology, RUNNER, &languages, cgroups, uids).unwrap();
    pools.remove_all_containers().await.unwrap();
    pools.warm_all().await.unwrap();
    pools
}

fn job(language: &str, file: &str, source: &str) -> JobMessage {
    let topology = Topology::from_source_tree().unwrap();
    let lang = topology.language(language).unwrap();
    JobMessage {
        schema: 1,
        id: uuid::Uuid::now_v7().to_string(),
        language: language.into(),
        files: vec![JobFile {
            name: file.into(),
            content: source.into(),
        }],
        entrypoint: file.into(),
        stdin: Default::default(),
        args: Vec::new(),
        limits: lang.default_limits,
        created_at: chrono::Utc::now(),
        interactive: false,
        judge: None,
        compiler_options: Vec::new(),
        merge_stderr: false,
    }
}

fn tests(inputs: &[&str]) -> Vec<ShimTest> {
    inputs
        .iter()
        .map(|i| ShimTest {
            stdin: Base64Bytes(i.as_bytes().to_vec()),
            limits: StepLimits {
                wall_time_ms: 5000,
                cpu_time_ms: 3000,
                memory_kb: 256 << 10,
                processes: 64,
                output_bytes: 65536,
                file_size_bytes: 1 << 20,
                open_files: 64,
            },
            files: Vec::new(),
            report_file: None,
        })
        .collect()
}

fn stdouts(record: &ShimRecord) -> Vec<String> {
    record
        .tests
        .iter()
        .map(|t| String::from_utf8_lossy(&t.stdout.0).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tests_run_in_order_from_a_sealed_build_and_leave_nothing_to_the_next() {
    let pools = pools(&["python", "cpp"]).await;

    // Python: each test reports what the one before may have left, then leaves all of it.
    let probe = "import os, subprocess, sys\n\
        a, b = map(int, input().split())\n\
        left = [p for p in ('left.txt', '/tmp/left.txt', '/dev/shm/left') if os.path.exists(p)]\n\
        def comm(p):\n    try:\n        return open(f'/proc/{p}/comm').read().strip()\n    except OSError:\n        return ''\n\
        daemons = sum(1 for p in os.listdir('/proc') if p.isdigit() and comm(p) == 'sleep')\n\
        try:\n    open('main.py', 'a').write('# changed')\n    sealed = 'WRITABLE'\nexcept OSError:\n    sealed = 'sealed'\n\
        for p in ('left.txt', '/tmp/left.txt', '/dev/shm/left'):\n    open(p, 'w').write('x')\n\
        subprocess.Popen(['sleep', '1000'], start_new_session=True)\n\
        print(a + b, left, sealed, daemons)\n";
    let record = pools
        .get("python")
        .unwrap()
        .run_tests(
            &job("python", "main.py", probe),
            tests(&["1 2\n", "3 4\n", "5 6\n"]),
            JobChannels::detached(),
        )
        .await
        .unwrap();
    assert_eq!(record.error, None, "{record:?}");
    let out = stdouts(&record);
    assert_eq!(out.len(), 3, "{out:?}");
    for (i, (line, sum)) in out.iter().zip(["3", "7", "11"]).enumerate() {
        assert!(
            line.starts_with(&format!("{sum} [] sealed ")),
            "test {}: {line:?}",
            i + 1
        );
        // No daemon of an earlier test survived.
        assert!(line.trim_end().ends_with(" 0"), "test {}: {out:?}", i + 1);
    }
    assert!(record
        .tests
        .iter()
        .all(|t| t.termination == Termination::Exited));

    // C++: compiled once; the binary cannot be replaced by a test.
    let cpp = "#include <cstdio>\nint main(){long a,b; if(scanf(\"%ld %ld\",&a,&b)!=2) return 4;\n\
        FILE* f=fopen(\"main\",\"w\"); printf(\"%ld %s\\n\", a+b, f?\"WRITABLE\":\"sealed\"); return 0;}";
    let record = pools
        .get("cpp")
        .unwrap()
        .run_tests(
            &job("cpp", "main.cpp", cpp),
            tests(&["1 2", "40 2", "x"]),
            JobChannels::detached(),
        )
        .await
        .unwrap();
    assert_eq!(record.steps.len(), 1, "one compile: {record:?}");
    assert_eq!(stdouts(&record), ["3 sealed\n", "42 sealed\n", ""]);
    assert_eq!(record.tests[2].exit_code, Some(4));

    pools.remove_all_containers().await.unwrap();
}
