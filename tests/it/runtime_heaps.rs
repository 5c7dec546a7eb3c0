//! Runtimes with a heap ceiling of their own (the JVM, V8, Go's collector) get it from the job's
//! `memory_mb`, not from the machine: the program can use the memory the client asked for, and a
//! program that needs more ends `memory_limit_exceeded` whichever wall it hits first (its
//! runtime's heap or the kernel's limit), as the same program in Python does.

use crate::helpers::{app, assert_verdict};
use serde_json::{json, Value};

/// A program per language that keeps `args[0]` MiB alive (every page written), then prints how
/// many MiB it holds.
const HOLDERS: &[(&str, &str)] = &[
    (
        "java",
        "public class Main { public static void main(String[] a) {\n\
         int n = Integer.parseInt(a[0]); byte[][] keep = new byte[n][];\n\
         for (int i = 0; i < n; i++) { keep[i] = new byte[1 << 20]; keep[i][i % 4096] = 1; }\n\
         System.out.println(keep.length); } }",
    ),
    (
        "javascript",
        "const n = +process.argv[2]; const keep = [];\n\
         for (let i = 0; i < n; i++) keep.push(new Array(1 << 17).fill(i));\n\
         console.log(keep.length);",
    ),
    (
        "go",
        "package main\nimport (\"fmt\"; \"os\"; \"strconv\")\n\
         func main() { n, _ := strconv.Atoi(os.Args[1]); keep := make([][]byte, 0, n)\n\
         for i := 0; i < n; i++ { b := make([]byte, 1<<20); for j := 0; j < len(b); j += 4096 { b[j] = 1 }; keep = append(keep, b) }\n\
         fmt.Println(len(keep)) }",
    ),
    (
        "python",
        "import sys\nkeep = [bytearray(b'x') * (1 << 20) for _ in range(int(sys.argv[1]))]\nprint(len(keep))",
    ),
];

async fn hold(language: &str, mib: u32, memory_mb: u32) -> Value {
    let source = HOLDERS.iter().find(|(l, _)| *l == language).unwrap().1;
    app()
        .run(json!({"language": language, "source": source, "args": [mib.to_string()],
                    "limits": {"memory_mb": memory_mb, "wall_time_ms": 20000, "cpu_time_ms": 15000}}))
        .await
}

async fn fits_when_asked_for(language: &str) {
    let job = hold(language, 400, 1024).await;
    assert_verdict(&job, "ok");
    assert_eq!(job["run"]["stdout"], "400\n", "{job:#}");
    let kb = job["run"]["memory_kb"].as_u64().unwrap();
    assert!(kb > 400 * 1024, "the kernel saw the 400 MiB: {job:#}");
}

async fn over_the_limit_is_memory_limit_exceeded(language: &str) {
    let job = hold(language, 400, 256).await;
    assert_verdict(&job, "memory_limit_exceeded");
    let stdout = job["run"]["stdout"].as_str().unwrap();
    assert!(
        !stdout.contains("400"),
        "the allocation never completed: {job:#}"
    );
}

macro_rules! heap_tests {
    ($($lang:ident),*) => {$(
        mod $lang {
            #[tokio::test(flavor = "multi_thread")]
            async fn holds_400_mib_at_memory_mb_1024() {
                super::fits_when_asked_for(stringify!($lang)).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn needing_400_mib_at_memory_mb_256_is_memory_limit_exceeded() {
                super::over_the_limit_is_memory_limit_exceeded(stringify!($lang)).await
            }
        }
    )*};
}
heap_tests!(java, javascript, go, python);

/// What the JVM itself reports as its ceiling follows the limit (it was 247 MiB at every limit).
#[tokio::test(flavor = "multi_thread")]
async fn the_jvms_max_memory_follows_memory_mb() {
    let source = "public class Main { public static void main(String[] a) { \
                  System.out.println(Runtime.getRuntime().maxMemory() >> 20); } }";
    let mut seen = Vec::new();
    for memory_mb in [128u64, 512, 1024] {
        let job = app()
            .run(json!({"language": "java", "source": source, "limits": {"memory_mb": memory_mb}}))
            .await;
        assert_verdict(&job, "ok");
        let heap: u64 = job["run"]["stdout"]
            .as_str()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // At least 90% of the limit less the JVM's measured 32 MiB (the collector keeps one
        // survivor space out of what it reports).
        assert!(
            heap <= memory_mb && heap * 10 >= (memory_mb - 32) * 9,
            "a heap of {heap} MiB at memory_mb {memory_mb}: {job:#}"
        );
        seen.push(heap);
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
}

/// Judge mode: one run template for every test, its heap sized by the largest test's limit, so
/// a test allowed more memory than the job's default gets it (and one allowed less is held to
/// its own limit by its cgroup, a memory verdict all the same).
#[tokio::test(flavor = "multi_thread")]
async fn a_judged_jvms_heap_follows_the_largest_tests_limit() {
    let source = "public class Main { public static void main(String[] a) { \
                  byte[] b = new byte[Integer.parseInt(new java.util.Scanner(System.in).nextLine()) << 20]; \
                  System.out.println(b.length >> 20); } }";
    let job = app()
        .run(
            json!({"language": "java", "source": source, "limits": {"memory_mb": 128},
            "tests": [
                {"stdin": "300", "expected": "300", "limits": {"memory_mb": 512}},
                {"stdin": "300", "expected": "300"},
            ]}),
        )
        .await;
    let verdicts: Vec<_> = job["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["accepted", "memory_limit_exceeded"], "{job:#}");
}
