//! The one program each measured language runs on every path, and what it must print: the
//! smallest program, so what is measured is the path's cost rather than the program's.

/// Where the native C floor's binary is compiled to, under the bench's output folder.
pub const FLOOR_C_BINARY: &str = "hello-c";

/// One language's program, in the shape each path needs it.
#[derive(Clone, Debug)]
pub struct Workload {
    pub language: &'static str,
    /// What a client sends as `source`.
    pub source: &'static str,
    pub expected_stdout: &'static str,
    /// Whether the program must be compiled first (the floor compiles it once, on the host).
    pub compiled: bool,
}

const C_HELLO: &str =
    "#include <stdio.h>\n\nint main(void) {\n    puts(\"hello, world\");\n    return 0;\n}\n";

impl Workload {
    pub fn of(language: &str) -> Option<Workload> {
        match language {
            "python" => Some(Workload {
                language: "python",
                source: "print(1)",
                expected_stdout: "1\n",
                compiled: false,
            }),
            "c" => Some(Workload {
                language: "c",
                source: C_HELLO,
                expected_stdout: "hello, world\n",
                compiled: true,
            }),
            _ => None,
        }
    }

    /// The argv that runs the program natively, given where the floor compiled it (C).
    /// Absolute paths: no PATH lookup (pyenv shims and the like) in the measurement.
    pub fn native_argv(&self, compiled_binary: &str) -> Vec<String> {
        if self.compiled {
            vec![compiled_binary.to_string()]
        } else {
            vec![
                "/usr/bin/python3".into(),
                "-c".into(),
                self.source.to_string(),
            ]
        }
    }

    /// The argv that runs the program in a fresh container of the language's image: the
    /// compiled language writes its source into the /work tmpfs, compiles it as the topology's
    /// compiler flags do, and runs it, all in the one container.
    pub fn container_argv(&self) -> Vec<String> {
        if self.compiled {
            let script = format!(
                "printf '%s' '{}' > /work/main.c && gcc -O2 -std=gnu17 -o /work/main /work/main.c -lm && /work/main",
                self.source
            );
            vec!["sh".into(), "-c".into(), script]
        } else {
            vec!["python3".into(), "-c".into(), self.source.to_string()]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_c_source_survives_single_quotes() {
        // The container script quotes the source with '...': it must contain none itself.
        assert!(!Workload::of("c").unwrap().source.contains('\''));
    }

    #[test]
    fn python_runs_the_same_program_everywhere() {
        let w = Workload::of("python").unwrap();
        assert_eq!(w.native_argv("unused")[0], "/usr/bin/python3");
        assert_eq!(w.container_argv()[2], w.source);
        assert!(Workload::of("cobol").is_none());
    }
}
