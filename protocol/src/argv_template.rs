//! The placeholders of a language's `compile`, `run` and `env` in `topology.yaml`, and how they
//! expand for one job. They exist so that a language's whole way of building and running a
//! program is written once, in the topology, and nothing about a language is decided in code:
//!
//! - `{file}`: the entrypoint's name; `{stem}`: that name without its extension.
//! - `{files:.c}` (or `{files:.cpp,.cc,.cxx}`), only as a whole argv element: every file of the
//!   job whose name ends in one of the extensions, the entrypoint first and the others in byte
//!   order, as one argv element each. This is how a compiler gets every source of a multi-file
//!   program (`gcc main.c util.c`, `go build main.go helper.go`) while a file the client sent as
//!   data (`input.txt`) stays out of the command. Names are safe as arguments: the file-name rule
//!   refuses a leading `-`, and argv never passes through a shell.
//! - `{heap_mb}`: the step's memory limit minus the language's `runtime_overhead_mb` (what its
//!   runtime takes outside the heap, measured), never below [`MIN_HEAP_MB`]. Runtimes with their
//!   own heap ceiling (the JVM's `-Xmx`, Node's `--max-old-space-size`, Go's `GOMEMLIMIT`) get
//!   the memory the client asked for instead of a default sized from the machine.

/// The smallest heap `{heap_mb}` gives, however small the limit: below it no JVM or V8 starts, and
/// the kernel's limit still ends a program that needs more.
pub const MIN_HEAP_MB: u64 = 16;

/// What the placeholders stand for in one step of one job.
#[derive(Clone, Copy, Debug)]
pub struct StepContext<'a> {
    /// The file the program starts from.
    pub entrypoint: &'a str,
    /// The names of all the job's files (the entrypoint among them).
    pub file_names: &'a [&'a str],
    /// The step's memory limit.
    pub memory_mb: u64,
    /// The language's `runtime_overhead_mb`.
    pub runtime_overhead_mb: u64,
}

impl StepContext<'_> {
    /// What `{heap_mb}` expands to.
    pub fn heap_mb(&self) -> u64 {
        self.memory_mb
            .saturating_sub(self.runtime_overhead_mb)
            .max(MIN_HEAP_MB)
    }

    fn stem(&self) -> &str {
        self.entrypoint
            .rsplit_once('.')
            .map_or(self.entrypoint, |(stem, _)| stem)
    }

    /// The job's files that end in one of `extensions`: the entrypoint first (whatever its name,
    /// since it is the program), the rest in byte order.
    fn sources(&self, extensions: &[&str]) -> Vec<String> {
        let mut rest: Vec<&str> = self
            .file_names
            .iter()
            .copied()
            .filter(|name| *name != self.entrypoint)
            .filter(|name| extensions.iter().any(|ext| name.ends_with(ext)))
            .collect();
        rest.sort_unstable();
        rest.dedup();
        std::iter::once(self.entrypoint.to_string())
            .chain(rest.into_iter().map(str::to_string))
            .collect()
    }
}

/// The extensions of a `{files:...}` element, or `None` if `arg` is not one.
fn files_placeholder(arg: &str) -> Option<Vec<&str>> {
    let list = arg.strip_prefix("{files:")?.strip_suffix('}')?;
    Some(list.split(',').map(str::trim).collect())
}

/// Expands a single value (an argv element that is not `{files:...}`, or an env value).
pub fn expand_value(value: &str, ctx: &StepContext<'_>) -> String {
    value
        .replace("{file}", ctx.entrypoint)
        .replace("{stem}", ctx.stem())
        .replace("{heap_mb}", &ctx.heap_mb().to_string())
}

/// Expands an argv template for one step.
pub fn expand_argv(template: &[String], ctx: &StepContext<'_>) -> Vec<String> {
    let mut argv = Vec::with_capacity(template.len());
    for arg in template {
        match files_placeholder(arg) {
            Some(extensions) => argv.extend(ctx.sources(&extensions)),
            None => argv.push(expand_value(arg, ctx)),
        }
    }
    argv
}

/// Checks one template value when the topology loads: every `{...}` must be a known placeholder,
/// and `{files:...}` (allowed only where `whole_element_lists` is true, i.e. in argv) must be a
/// whole element with non-empty extensions that start with a dot. A typo then fails at startup
/// instead of reaching a compiler as a literal `{flie}`.
pub fn check(value: &str, whole_element_lists: bool) -> Result<(), String> {
    if let Some(extensions) = files_placeholder(value) {
        if !whole_element_lists {
            return Err(format!(
                "{value:?}: {{files:...}} is allowed only in compile and run"
            ));
        }
        if let Some(bad) = extensions
            .iter()
            .find(|e| e.len() < 2 || !e.starts_with('.') || e.contains(['{', '}', '/']))
        {
            return Err(format!(
                "{value:?}: extension {bad:?} must be a dot and at least one character"
            ));
        }
        return Ok(());
    }
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("{value:?}: '{{' without a closing '}}'"))?;
        let name = &after[..close];
        if !["file", "stem", "heap_mb"].contains(&name) {
            return Err(format!(
                "{value:?}: unknown placeholder {{{name}}} (known: {{file}}, {{stem}}, {{heap_mb}}, and {{files:.ext,...}} as a whole argv element)"
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(entrypoint: &'a str, file_names: &'a [&'a str]) -> StepContext<'a> {
        StepContext {
            entrypoint,
            file_names,
            memory_mb: 256,
            runtime_overhead_mb: 40,
        }
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn every_source_of_the_language_is_listed_entrypoint_first() {
        let names = ["util.c", "main.c", "data.txt", "a.h", "b.c"];
        let got = expand_argv(
            &argv(&["gcc", "-o", "main", "{files:.c}", "-lm"]),
            &ctx("main.c", &names),
        );
        assert_eq!(
            got,
            argv(&["gcc", "-o", "main", "main.c", "b.c", "util.c", "-lm"])
        );
    }

    #[test]
    fn several_extensions_and_an_entrypoint_without_one() {
        let names = ["prog", "x.cc", "y.cpp", "z.cxx", "w.c"];
        let got = expand_argv(&argv(&["{files:.cpp, .cc,.cxx}"]), &ctx("prog", &names));
        assert_eq!(got, argv(&["prog", "x.cc", "y.cpp", "z.cxx"]));
    }

    #[test]
    fn a_single_file_job_gets_its_entrypoint_alone() {
        let got = expand_argv(&argv(&["{files:.go}"]), &ctx("main.go", &["main.go"]));
        assert_eq!(got, argv(&["main.go"]));
    }

    #[test]
    fn file_stem_and_heap_expand_inside_elements() {
        let c = ctx("Main.java", &["Main.java"]);
        assert_eq!(
            expand_argv(&argv(&["-Xmx{heap_mb}m", "{stem}", "{file}"]), &c),
            argv(&["-Xmx216m", "Main", "Main.java"])
        );
        assert_eq!(expand_value("{heap_mb}MiB", &c), "216MiB");
    }

    #[test]
    fn the_heap_never_goes_below_the_floor() {
        let c = StepContext {
            memory_mb: 20,
            ..ctx("a", &[])
        };
        assert_eq!(c.heap_mb(), MIN_HEAP_MB);
    }

    #[test]
    fn unknown_or_misplaced_placeholders_are_refused() {
        for (value, in_argv) in [
            ("{flie}", true),
            ("-o{file", true),
            ("x{files:.c}", true),
            ("{files:c}", true),
            ("{files:.}", true),
            ("{files:.c}", false),
        ] {
            assert!(check(value, in_argv).is_err(), "{value:?} passed");
        }
        for value in [
            "{file}",
            "{stem}.class",
            "-Xmx{heap_mb}m",
            "{files:.c,.h}",
            "plain",
        ] {
            assert_eq!(check(value, true), Ok(()), "{value:?}");
        }
    }
}
