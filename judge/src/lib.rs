//! Judge mode's trusted code: what runs outside the sandbox, on output a hostile program chose.
//!
//! Everything here is pure and bounded: time linear in the bytes compared, memory independent of
//! how many tokens or lines there are, no assumption that output is UTF-8 or free of NUL, and
//! messages capped (`message::MAX_BYTES`), so a test's output cannot make its own judging slow,
//! wrong or large. The runner feeds it; the sandbox never sees an expected output.

pub mod checker;
pub mod message;
pub mod score;
mod tokens;
