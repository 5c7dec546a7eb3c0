//! The one rule for the names of a job's files, shared by the api (which refuses a bad name with
//! a 422 naming the file) and the shim (which re-checks every name before it creates anything,
//! because it trusts nothing it is handed). Two rules used to disagree: the api admitted `.tmp`
//! and `.cache`, the shim refused them, and such a job failed as `internal_error` on every
//! resubmission. A name is what the shim creates inside the job's workspace: a plain name, never
//! a path, and never one of the directories the shim makes there itself.

/// Longest file name, in bytes (not characters: the filesystem counts bytes).
pub const MAX_LEN: usize = 128;

/// Directories the shim creates in every workspace before the job runs: `.tmp` is the job's
/// `TMPDIR`, `.cache` its `XDG_CACHE_HOME` (compilers and runtimes write there). A file of the
/// same name would collide with them.
pub const RESERVED: [&str; 2] = [".tmp", ".cache"];

/// Why a file name is refused. The `Display` text completes "file name "x" ...".
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileNameError {
    #[error("is empty")]
    Empty,
    #[error("is {0} bytes long; at most {MAX_LEN} bytes are allowed")]
    TooLong(usize),
    #[error("is a directory reference, not a file name")]
    DirectoryReference,
    #[error("starts with '-', which programs would read as an option")]
    LeadingDash,
    #[error("contains a path separator ('/' or '\\'); give a plain file name")]
    PathSeparator,
    #[error("contains a control character")]
    ControlCharacter,
    #[error("is reserved: the sandbox creates a directory of that name in every workspace (reserved: .tmp, .cache)")]
    Reserved,
}

/// Checks `name` against the rule; `Ok` means the shim will create it as given.
pub fn check(name: &str) -> Result<(), FileNameError> {
    if name.is_empty() {
        Err(FileNameError::Empty)
    } else if name.len() > MAX_LEN {
        Err(FileNameError::TooLong(name.len()))
    } else if name == "." || name == ".." {
        Err(FileNameError::DirectoryReference)
    } else if name.starts_with('-') {
        Err(FileNameError::LeadingDash)
    } else if name.contains('/') || name.contains('\\') {
        Err(FileNameError::PathSeparator)
    } else if name.chars().any(char::is_control) {
        // Includes NUL, which no path may contain, and newlines, which would garble logs.
        Err(FileNameError::ControlCharacter)
    } else if RESERVED.contains(&name) {
        Err(FileNameError::Reserved)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        for name in [
            "main.py",
            "Main.java",
            ".hidden",
            ".env",
            ".tmpx",
            "tmp",
            ".cache2",
            "a b",
            "ü.txt",
            "x-",
            &"a".repeat(MAX_LEN),
        ] {
            assert_eq!(check(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let cases = [
            ("", FileNameError::Empty),
            (".", FileNameError::DirectoryReference),
            ("..", FileNameError::DirectoryReference),
            ("-rf", FileNameError::LeadingDash),
            ("../x", FileNameError::PathSeparator),
            ("a/b", FileNameError::PathSeparator),
            ("/etc", FileNameError::PathSeparator),
            ("a\\b", FileNameError::PathSeparator),
            ("a\0b", FileNameError::ControlCharacter),
            ("a\nb", FileNameError::ControlCharacter),
            (".tmp", FileNameError::Reserved),
            (".cache", FileNameError::Reserved),
        ];
        for (name, why) in cases {
            assert_eq!(check(name), Err(why), "{name:?}");
        }
        assert_eq!(
            check(&"a".repeat(MAX_LEN + 1)),
            Err(FileNameError::TooLong(MAX_LEN + 1))
        );
    }

    #[test]
    fn length_is_counted_in_bytes() {
        // 64 two-byte characters = 128 bytes; 65 are 130.
        assert!(check(&"é".repeat(64)).is_ok());
        assert_eq!(check(&"é".repeat(65)), Err(FileNameError::TooLong(130)));
    }

    #[test]
    fn reasons_read_as_the_end_of_a_sentence() {
        let text = format!("file name {:?} {}", ".tmp", FileNameError::Reserved);
        assert!(text.contains("reserved"), "{text}");
        for name in RESERVED {
            assert!(text.contains(name), "the message lists {name}: {text}");
        }
        assert!(FileNameError::TooLong(200).to_string().contains("128"));
    }
}
