//! Every language of the topology: hello world, stdin echo, a runtime error with its exit code,
//! a multi-file program built the way its users expect, and a compile error for the compiled
//! ones, each through the whole stack.

use crate::helpers::{app, assert_verdict};
use serde_json::{json, Value};

/// Programs for one language: hello world, echo of one stdin line, exit with code 3, and (for
/// compiled languages) a program that does not compile.
struct Programs {
    language: &'static str,
    hello: &'static str,
    echo: &'static str,
    exit3: &'static str,
    broken: Option<&'static str>,
    /// A program of several files (the entrypoint first) that prints `42` only if every source
    /// file was built in; `notes.txt`, a data file no compiler may be handed, is sent along.
    multi_file: &'static [(&'static str, &'static str)],
}

const PROGRAMS: &[Programs] = &[
    Programs {
        language: "python",
        hello: "print('hello, world')",
        echo: "print(input())",
        exit3: "import sys\nsys.exit(3)",
        broken: None,
        multi_file: &[
            ("main.py", "import random\nimport util\nrandom.seed(1)\nprint(util.answer())"),
            ("util.py", "def answer():\n    return 42"),
            // Named like a standard module: the workspace must not come before the library.
            ("random.py", "raise SystemExit('the standard library was shadowed by a job file')"),
        ],
    },
    Programs {
        language: "javascript",
        hello: "console.log('hello, world')",
        echo: "const l = require('fs').readFileSync(0, 'utf8').split('\\n')[0]; console.log(l)",
        exit3: "process.exit(3)",
        broken: None,
        multi_file: &[
            ("main.js", "const u = require('./util'); console.log(u.answer())"),
            ("util.js", "exports.answer = () => 42"),
        ],
    },
    Programs {
        language: "bash",
        hello: "echo 'hello, world'",
        echo: "read -r line; echo \"$line\"",
        exit3: "exit 3",
        broken: None,
        multi_file: &[
            ("main.sh", "source ./util.sh\nanswer"),
            ("util.sh", "answer() { echo 42; }"),
        ],
    },
    Programs {
        language: "c",
        hello: "#include <stdio.h>\nint main(void){puts(\"hello, world\");return 0;}",
        echo: "#include <stdio.h>\nint main(void){char b[256];if(fgets(b,sizeof b,stdin))fputs(b,stdout);return 0;}",
        exit3: "int main(void){return 3;}",
        broken: Some("int main(void){ return undefined_name; }"),
        multi_file: &[
            ("main.c", "#include <stdio.h>\n#include \"util.h\"\nint main(void){printf(\"%d\\n\", half() + half());return 0;}"),
            ("util.h", "int half(void);"),
            ("util.c", "#include \"util.h\"\nint base(void);\nint half(void){return base();}"),
            ("base.c", "int base(void){return 21;}"),
        ],
    },
    Programs {
        language: "cpp",
        hello: "#include <iostream>\nint main(){std::cout<<\"hello, world\"<<std::endl;}",
        echo: "#include <iostream>\n#include <string>\nint main(){std::string l;std::getline(std::cin,l);std::cout<<l<<\"\\n\";}",
        exit3: "int main(){return 3;}",
        broken: Some("int main(){ std::vector<int> v; }"),
        multi_file: &[
            ("main.cpp", "#include <iostream>\n#include \"util.hpp\"\nint main(){std::cout<<half()+half()<<\"\\n\";}"),
            ("util.hpp", "int half();"),
            ("util.cc", "#include \"util.hpp\"\nint base();\nint half(){return base();}"),
            ("base.cxx", "int base(){return 21;}"),
        ],
    },
    Programs {
        language: "java",
        hello: "public class Main { public static void main(String[] a) { System.out.println(\"hello, world\"); } }",
        echo: "import java.util.Scanner;\npublic class Main { public static void main(String[] a) { System.out.println(new Scanner(System.in).nextLine()); } }",
        exit3: "public class Main { public static void main(String[] a) { System.exit(3); } }",
        broken: Some("public class Main { public static void main(String[] a) { int x = \"no\"; } }"),
        multi_file: &[
            ("Main.java", "public class Main { public static void main(String[] a) { System.out.println(Util.twice(21)); } }"),
            ("Util.java", "class Util { static int twice(int x) { return 2 * x; } }"),
            // Referenced by no class: compiled all the same (its error would show).
            ("Spare.java", "class Spare { int unused() { return 0; } }"),
        ],
    },
    Programs {
        language: "go",
        hello: "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"hello, world\") }",
        echo: "package main\nimport (\"bufio\";\"fmt\";\"os\")\nfunc main() { s := bufio.NewScanner(os.Stdin); s.Scan(); fmt.Println(s.Text()) }",
        exit3: "package main\nimport \"os\"\nfunc main() { os.Exit(3) }",
        broken: Some("package main\nfunc main() { x := 1 }"),
        multi_file: &[
            ("main.go", "package main\nimport \"fmt\"\nfunc main() { fmt.Println(answer()) }"),
            ("helper.go", "package main\nfunc answer() int { return 42 }"),
        ],
    },
    Programs {
        language: "rust",
        hello: "fn main() { println!(\"hello, world\"); }",
        echo: "fn main() { let mut l = String::new(); std::io::stdin().read_line(&mut l).unwrap(); print!(\"{l}\"); }",
        exit3: "fn main() { std::process::exit(3); }",
        broken: Some("fn main() { let x: u32 = \"no\"; }"),
        multi_file: &[
            ("main.rs", "mod util;\nfn main() { println!(\"{}\", util::answer()); }"),
            ("util.rs", "pub fn answer() -> u32 { 42 }"),
        ],
    },
];

fn programs(language: &str) -> &'static Programs {
    PROGRAMS.iter().find(|p| p.language == language).unwrap()
}

fn stdout(job: &Value) -> &str {
    job["run"]["stdout"].as_str().unwrap_or_default()
}

async fn hello(language: &str) {
    let job = app()
        .run_source(language, programs(language).hello, "")
        .await;
    assert_verdict(&job, "ok");
    assert_eq!(stdout(&job), "hello, world\n", "{job:#}");
    assert_eq!(job["status"], "completed");
    assert_eq!(job["run"]["exit_code"], 0);
    assert!(job["run"]["wall_ms"].as_u64().is_some(), "{job:#}");
    let compiled = programs(language).broken.is_some();
    assert_eq!(
        job["compile"].is_object(),
        compiled,
        "compile report iff compiled: {job:#}"
    );
}

async fn echo(language: &str) {
    let line = format!("echo {} ✓", uuid::Uuid::now_v7());
    let job = app()
        .run_source(
            language,
            programs(language).echo,
            &format!("{line}\nsecond line\n"),
        )
        .await;
    assert_verdict(&job, "ok");
    assert_eq!(stdout(&job), format!("{line}\n"));
}

async fn exit_code(language: &str) {
    let job = app()
        .run_source(language, programs(language).exit3, "")
        .await;
    assert_verdict(&job, "runtime_error");
    assert_eq!(job["run"]["exit_code"], 3, "{job:#}");
}

async fn multi_file(language: &str) {
    let mut files: Vec<Value> = programs(language)
        .multi_file
        .iter()
        .map(|(name, content)| json!({"name": name, "content": content}))
        .collect();
    files.push(json!({"name": "notes.txt", "content": "data, not a source file"}));
    let entrypoint = programs(language).multi_file[0].0;
    let job = app()
        .run(json!({"language": language, "files": files, "entrypoint": entrypoint}))
        .await;
    assert_verdict(&job, "ok");
    assert_eq!(stdout(&job), "42\n", "{job:#}");
}

async fn compile_error(language: &str) {
    let job = app()
        .run_source(language, programs(language).broken.unwrap(), "")
        .await;
    assert_verdict(&job, "compile_error");
    assert!(
        job["run"].is_null(),
        "no run after a failed compile: {job:#}"
    );
    let compile = &job["compile"];
    assert_ne!(compile["exit_code"], 0);
    let diagnostics = format!("{}{}", compile["stdout"], compile["stderr"]);
    // Every compiler names the file it rejects; Go does not say "error".
    let file = topology_file(language);
    assert!(
        diagnostics.contains(&file),
        "the compiler's diagnostics reach the client: {job:#}"
    );
}

macro_rules! language_tests {
    ($($lang:ident),*) => {$(
        mod $lang {
            #[tokio::test(flavor = "multi_thread")]
            async fn hello_world() { super::hello(stringify!($lang)).await }
            #[tokio::test(flavor = "multi_thread")]
            async fn stdin_echo() { super::echo(stringify!($lang)).await }
            #[tokio::test(flavor = "multi_thread")]
            async fn runtime_error_exit_code() { super::exit_code(stringify!($lang)).await }
            #[tokio::test(flavor = "multi_thread")]
            async fn multi_file_program() { super::multi_file(stringify!($lang)).await }
        }
    )*};
}
language_tests!(python, javascript, bash, c, cpp, java, go, rust);

macro_rules! compile_error_tests {
    ($($lang:ident),*) => {$(
        mod $lang {
            #[tokio::test(flavor = "multi_thread")]
            async fn compile_error() { super::super::compile_error(stringify!($lang)).await }
        }
    )*};
}
mod compiled {
    compile_error_tests!(c, cpp, java, go, rust);
}

fn topology() -> rce_protocol::topology::Topology {
    rce_protocol::topology::Topology::from_source_tree().unwrap()
}

fn topology_file(language: &str) -> String {
    topology().language(language).unwrap().file
}

#[test]
fn every_topology_language_has_programs() {
    let topology = topology();
    for lang in topology.all_languages() {
        let p = PROGRAMS.iter().find(|p| p.language == lang.id);
        let p = p.unwrap_or_else(|| panic!("no test programs for {}", lang.id));
        assert_eq!(p.broken.is_some(), lang.is_compiled(), "{}", lang.id);
        assert!(
            p.multi_file.len() >= 2,
            "{}: no multi-file program",
            lang.id
        );
        assert_eq!(
            p.multi_file[0].0, lang.file,
            "{}: entrypoint first",
            lang.id
        );
    }
}

/// Rust programs are compiled with a modern edition (rustc alone defaults to 2015, where
/// `async` is not a keyword), and `/v1/languages` says which.
#[tokio::test(flavor = "multi_thread")]
async fn rust_uses_the_2021_edition() {
    let app = app();
    let src = "async fn answer() -> u32 { 42 }\nfn main() {\n    let _future = answer();\n    let array = [1, 2];\n    for x in array { print!(\"{x}\"); }\n    println!();\n}";
    let result = app.run(json!({"language": "rust", "source": src})).await;
    assert_verdict(&result, "ok");
    assert_eq!(result["run"]["stdout"], "12\n");
    let rust = app.language("rust").await;
    assert!(
        rust["name"].as_str().unwrap().contains("edition 2021"),
        "{rust}"
    );
}
