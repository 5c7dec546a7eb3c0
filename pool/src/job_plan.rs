//! Turning a job message into what the shim runs: the steps, their argv and limits, the uid;
//! and the uid blocks a runner's containers take their job uids from.
//!
//! The kernel keeps some budgets per uid, across every container on the machine:
//! `RLIMIT_NPROC` (processes and threads), POSIX message queue bytes, pending signals, inotify
//! instances and watches, pipe pages. So no two containers that may exist at the same time ever
//! share a job uid, whatever their language or runner: the topology's uids (from
//! `sandbox.uid_base`) are cut into blocks of `sandbox.uid_span`, each runner owns a range of
//! blocks ([`UidRange`], from its `RCE_RUNNER_INDEX`), every container of the runner leases one
//! block of that range from the runner's one [`UidBlocks`], and the block is free again only
//! once the container is gone.

use crate::error::PoolError;
use rce_protocol::job::JobMessage;
use rce_protocol::limits::Limits;
use rce_protocol::shim::{ShimFile, ShimJob, ShimStep, StepLimits};
use rce_protocol::step::StepName;
use rce_protocol::topology::{Language, Program, Sandbox};
use rce_protocol::SCHEMA_VERSION;
use std::sync::{Arc, Mutex};

/// Time the shim may take beyond the steps' own wall limits before the runner gives up on the
/// container; defined with the shim protocol, since the shim's cleanup budget is a part of it.
pub use rce_protocol::shim::SHIM_MARGIN_MS;

/// The highest uid a job may get: uids above it are negative as a signed `pid_t`/`uid_t` in
/// places (`kill(-1)`, `(uid_t)-1` meaning "unchanged" in `setresuid`).
const MAX_JOB_UID: u64 = i32::MAX as u64;

/// How many blocks a runner needs per container it keeps: a retired container keeps its block
/// until it has been removed, while its replacement already holds a new one.
pub const BLOCKS_PER_CONTAINER: u32 = 2;

/// The uid a job runs under: in its container's block (so no other container, of any language
/// or runner, shares it) and rotating per job inside it. `block` comes from a [`UidBlock`],
/// whose range was checked to end at or below [`MAX_JOB_UID`].
pub fn job_uid(sandbox: &Sandbox, block: u32, jobs_run: u64) -> u32 {
    sandbox.uid_base + block * sandbox.uid_span + (jobs_run % sandbox.uid_span as u64) as u32
}

/// Why a runner's uid range was refused at start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UidRangeError {
    #[error("a runner needs at least one uid block (RCE_RUNNER_UID_BLOCKS)")]
    NoBlocks,
    #[error(
        "runner index {index} with {blocks} blocks of {span} uids from uid {base} would go past \
         uid {MAX_JOB_UID}: lower RCE_RUNNER_INDEX or RCE_RUNNER_UID_BLOCKS"
    )]
    Overflow {
        index: u32,
        blocks: u32,
        span: u32,
        base: u32,
    },
    #[error(
        "{blocks} uid blocks cannot serve {containers} warm containers: a runner needs \
         {BLOCKS_PER_CONTAINER} per container it keeps (raise RCE_RUNNER_UID_BLOCKS)"
    )]
    TooSmall { blocks: u32, containers: usize },
}

/// The blocks of job uids one runner owns: `blocks` blocks from block `index × blocks`.
/// Runners with different indices (and the same block count) never overlap: that is how
/// runners sharing a Docker engine, or just a kernel, stay apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UidRange {
    first_block: u32,
    blocks: u32,
    first_uid: u32,
    last_uid: u32,
}

impl UidRange {
    /// The range of the runner with `index`, refused when any of its uids would pass
    /// [`MAX_JOB_UID`].
    pub fn for_runner(sandbox: &Sandbox, index: u32, blocks: u32) -> Result<Self, UidRangeError> {
        if blocks == 0 {
            return Err(UidRangeError::NoBlocks);
        }
        // In u128, where no index or block count can overflow.
        let (base, span) = (u128::from(sandbox.uid_base), u128::from(sandbox.uid_span));
        let first_block = u128::from(index) * u128::from(blocks);
        let end_block = first_block + u128::from(blocks);
        let last_uid = base + end_block * span - 1;
        if last_uid > u128::from(MAX_JOB_UID) {
            return Err(UidRangeError::Overflow {
                index,
                blocks,
                span: sandbox.uid_span,
                base: sandbox.uid_base,
            });
        }
        Ok(Self {
            first_block: first_block as u32,
            blocks,
            first_uid: (base + first_block * span) as u32,
            last_uid: last_uid as u32,
        })
    }

    /// Refuses a range too small for `containers` warm containers (see
    /// [`BLOCKS_PER_CONTAINER`]).
    pub fn check_holds(&self, containers: usize) -> Result<(), UidRangeError> {
        if (self.blocks as usize) < containers * BLOCKS_PER_CONTAINER as usize {
            return Err(UidRangeError::TooSmall {
                blocks: self.blocks,
                containers,
            });
        }
        Ok(())
    }

    /// The first and the last job uid of the range.
    pub fn uids(&self) -> (u32, u32) {
        (self.first_uid, self.last_uid)
    }
}

/// One runner's uid blocks, shared by all its pools: each block is leased by one container at
/// a time, from before the container is created until after it is removed.
#[derive(Debug)]
pub struct UidBlocks {
    range: UidRange,
    state: Mutex<BlockState>,
}

#[derive(Debug)]
struct BlockState {
    /// Leased blocks, by offset in the range.
    leased: Vec<bool>,
    /// Where the search for a free block starts: just past the block leased last, so a block
    /// given back is the last one leased again.
    next: u32,
}

impl UidBlocks {
    pub fn new(range: UidRange) -> Arc<Self> {
        Arc::new(Self {
            range,
            state: Mutex::new(BlockState {
                leased: vec![false; range.blocks as usize],
                next: 0,
            }),
        })
    }

    /// A free block for a new container of `language`. None is free only when the runner has
    /// more containers than [`UidRange::check_holds`] allowed for; creating the container then
    /// fails rather than share a block.
    pub fn lease(self: &Arc<Self>, language: &str) -> Result<UidBlock, PoolError> {
        let mut state = self.state.lock().expect("uid blocks poisoned");
        let blocks = self.range.blocks;
        let start = state.next;
        let offset = (0..blocks)
            .map(|i| (start + i) % blocks)
            .find(|&o| !state.leased[o as usize])
            .ok_or_else(|| PoolError::Unavailable {
                language: language.to_string(),
                reason: format!("all {blocks} uid blocks of this runner are leased"),
            })?;
        state.leased[offset as usize] = true;
        state.next = (offset + 1) % blocks;
        Ok(UidBlock {
            index: self.range.first_block + offset,
            blocks: Arc::clone(self),
        })
    }

    /// Blocks leased now.
    pub fn leased(&self) -> usize {
        let state = self.state.lock().expect("uid blocks poisoned");
        state.leased.iter().filter(|l| **l).count()
    }

    fn give_back(&self, index: u32) {
        let mut state = self.state.lock().expect("uid blocks poisoned");
        state.leased[(index - self.range.first_block) as usize] = false;
    }
}

/// A container's uid block, leased from its runner's [`UidBlocks`] and given back when dropped.
/// The container holds it until it has been removed: giving it back earlier would let a new
/// container share uids with one that may still run.
pub struct UidBlock {
    index: u32,
    blocks: Arc<UidBlocks>,
}

impl UidBlock {
    /// The block's number among all the topology's blocks (what [`job_uid`] takes).
    pub fn index(&self) -> u32 {
        self.index
    }
}

impl Drop for UidBlock {
    fn drop(&mut self) {
        self.blocks.give_back(self.index);
    }
}

impl std::fmt::Display for UidBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.index.fmt(f)
    }
}

impl std::fmt::Debug for UidBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UidBlock({})", self.index)
    }
}

/// A step's limits: the job's, plus the sandbox's file-size and open-file limits.
pub fn step_limits(limits: &Limits, sandbox: &Sandbox) -> StepLimits {
    StepLimits {
        wall_time_ms: limits.wall_time_ms,
        cpu_time_ms: limits.cpu_time_ms,
        memory_kb: limits.memory_mb * 1024,
        processes: limits.processes,
        output_bytes: limits.output_bytes,
        file_size_bytes: sandbox.file_size_mb << 20,
        open_files: sandbox.open_files,
    }
}

/// The shim's job for `job` in `language`, to run as `uid`.
pub fn shim_job(job: &JobMessage, language: &Language, sandbox: &Sandbox, uid: u32) -> ShimJob {
    let program = Program {
        entrypoint: &job.entrypoint,
        file_names: job.files.iter().map(|f| f.name.as_str()).collect(),
    };
    let mut steps = Vec::with_capacity(2);
    if let Some(mut argv) = language.compile_argv(&program) {
        argv.extend(job.compiler_options.iter().cloned());
        steps.push(ShimStep {
            name: StepName::Compile,
            argv,
            env: language.step_env(&program, language.compile_limits.memory_mb),
            stdin: Default::default(),
            limits: step_limits(&language.compile_limits, sandbox),
            merge_stderr: false,
        });
    }
    // A runtime's heap ({heap_mb}) is sized once for the run template; in judge mode it follows
    // the largest memory limit of any test, so no test's runtime stops short of its own limit
    // (a test with less is held to it by its cgroup).
    let run_memory_mb = job
        .judge
        .as_ref()
        .and_then(|j| j.tests.iter().map(|t| t.limits.memory_mb).max())
        .unwrap_or(job.limits.memory_mb);
    steps.push(ShimStep {
        name: StepName::Run,
        argv: language.run_argv(&program, run_memory_mb, &job.args),
        env: language.step_env(&program, run_memory_mb),
        stdin: job.stdin.clone(),
        limits: step_limits(&job.limits, sandbox),
        merge_stderr: job.merge_stderr,
    });
    ShimJob {
        schema: SCHEMA_VERSION,
        job_id: job.id.clone(),
        uid,
        files: job
            .files
            .iter()
            .map(|f| ShimFile {
                name: f.name.clone(),
                content: f.content.clone(),
            })
            .collect(),
        steps,
        baseline: None,
        interactive: job.interactive,
        tests: Vec::new(),
        stop_on_failure: false,
    }
}

pub use rce_protocol::judge::PER_TEST_MARGIN_MS;

/// How long the runner waits for the shim before declaring the container broken: every step's
/// wall limit (in judge mode the run step's once per test, with its limits) plus the margins.
pub fn deadline_ms(job: &ShimJob) -> u64 {
    let steps = job.steps.len() - usize::from(!job.tests.is_empty() && !job.steps.is_empty());
    let own: u64 = job.steps[..steps]
        .iter()
        .map(|s| s.limits.wall_time_ms)
        .sum();
    let tests: u64 = job
        .tests
        .iter()
        .map(|t| t.limits.wall_time_ms + PER_TEST_MARGIN_MS)
        .sum();
    own + tests + SHIM_MARGIN_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_protocol::job::JobFile;
    use rce_protocol::topology::Topology;

    fn topology() -> Topology {
        Topology::from_source_tree().unwrap()
    }

    fn job(lang: &Language) -> JobMessage {
        JobMessage {
            schema: 1,
            id: "j1".into(),
            language: lang.id.clone(),
            files: vec![JobFile {
                name: lang.file.clone(),
                content: "x".into(),
            }],
            entrypoint: lang.file.clone(),
            stdin: "in".into(),
            args: vec!["--a".into()],
            limits: lang.default_limits,
            created_at: chrono::Utc::now(),
            interactive: false,
            judge: None,
            compiler_options: Vec::new(),
            merge_stderr: false,
        }
    }

    /// In judge mode the run step counts once per test, with each test's own wall limit and
    /// margin, instead of once with the job's.
    #[test]
    fn a_judged_jobs_deadline_counts_every_test() {
        let t = topology();
        let c = t.language("c").unwrap();
        let mut sj = shim_job(&job(&c), &c, &t.sandbox, 20001);
        let (compile, run) = (sj.steps[0].limits, sj.steps[1].limits);
        assert_eq!(
            deadline_ms(&sj),
            compile.wall_time_ms + run.wall_time_ms + SHIM_MARGIN_MS
        );
        let test = |wall_time_ms| rce_protocol::shim::ShimTest {
            stdin: Default::default(),
            limits: StepLimits {
                wall_time_ms,
                ..run
            },
            files: Vec::new(),
            report_file: None,
        };
        sj.tests = vec![test(100), test(200), test(300)];
        assert_eq!(
            deadline_ms(&sj),
            compile.wall_time_ms + 600 + 3 * PER_TEST_MARGIN_MS + SHIM_MARGIN_MS
        );
    }

    #[test]
    fn compiled_language_has_compile_then_run() {
        let t = topology();
        let c = t.language("c").unwrap();
        let sj = shim_job(&job(&c), &c, &t.sandbox, 20001);
        let names: Vec<_> = sj.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["compile", "run"]);
        assert!(
            sj.steps[0].stdin.0.is_empty(),
            "the compiler never sees the job's stdin"
        );
        assert_eq!(sj.steps[1].stdin.0, b"in");
        assert_eq!(sj.steps[1].argv.last().unwrap(), "--a");
        assert_eq!(
            sj.steps[0].limits.memory_kb,
            c.compile_limits.memory_mb * 1024
        );
        assert_eq!(
            deadline_ms(&sj),
            c.compile_limits.wall_time_ms + c.default_limits.wall_time_ms + SHIM_MARGIN_MS
        );
    }

    #[test]
    fn interpreted_language_only_runs() {
        let t = topology();
        let py = t.language("python").unwrap();
        let sj = shim_job(&job(&py), &py, &t.sandbox, 20001);
        assert_eq!(sj.steps.len(), 1);
        assert_eq!(sj.steps[0].argv, ["python3", "main.py", "--a"]);
    }

    #[test]
    fn uids_differ_between_blocks_and_rotate_within_one() {
        let t = topology();
        let s = &t.sandbox;
        assert_eq!(job_uid(s, 0, 0), s.uid_base);
        assert_ne!(job_uid(s, 0, 1), job_uid(s, 0, 0));
        assert_eq!(job_uid(s, 1, 0), s.uid_base + s.uid_span);
        assert_eq!(job_uid(s, 0, s.uid_span as u64), job_uid(s, 0, 0));
        assert_eq!(
            job_uid(s, 0, u64::MAX),
            s.uid_base + (u64::MAX % s.uid_span as u64) as u32
        );
    }

    #[test]
    fn a_block_is_never_leased_twice_while_its_container_may_live() {
        let t = topology();
        let blocks = UidBlocks::new(UidRange::for_runner(&t.sandbox, 0, 4).unwrap());
        let a = blocks.lease("python").unwrap();
        let b = blocks.lease("bash").unwrap();
        assert_ne!(a.index(), b.index());
        drop(a);
        // Around the range twice while `b` lives: never b's block, and the block given back
        // (0) comes last.
        let mut leased = Vec::new();
        for _ in 0..6 {
            let c = blocks.lease("c").unwrap();
            leased.push(c.index());
        }
        assert_eq!(leased, [2, 3, 0, 2, 3, 0]);
        // Every block leased: no wrap into a live container's block, the lease fails.
        let rest: Vec<_> = (0..3).map(|_| blocks.lease("go").unwrap()).collect();
        assert_eq!(blocks.leased(), 4);
        assert!(matches!(
            blocks.lease("rust"),
            Err(PoolError::Unavailable { .. })
        ));
        drop(rest);
        assert_eq!(blocks.leased(), 1);
        let d = blocks.lease("java").unwrap();
        let s = &t.sandbox;
        let uids =
            |blk: &UidBlock| job_uid(s, blk.index(), 0)..job_uid(s, blk.index(), 0) + s.uid_span;
        let (b_uids, d_uids) = (uids(&b), uids(&d));
        assert!(b_uids.end <= d_uids.start || d_uids.end <= b_uids.start);
    }

    #[test]
    fn runners_with_different_indices_never_overlap() {
        let t = topology();
        let s = &t.sandbox;
        let ranges: Vec<_> = (0..4)
            .map(|i| UidRange::for_runner(s, i, 1024).unwrap().uids())
            .collect();
        assert_eq!(ranges[0], (s.uid_base, s.uid_base + 1024 * s.uid_span - 1));
        for (i, a) in ranges.iter().enumerate() {
            for b in &ranges[i + 1..] {
                assert!(a.1 < b.0, "{a:?} and {b:?} overlap");
            }
        }
        // Runner 1's last block and runner 2's first are neighbours, not the same.
        let one = UidBlocks::new(UidRange::for_runner(s, 1, 2).unwrap());
        let two = UidBlocks::new(UidRange::for_runner(s, 2, 2).unwrap());
        let ones = [one.lease("x").unwrap(), one.lease("x").unwrap()];
        assert_eq!(ones[1].index() + 1, two.lease("x").unwrap().index());
    }

    #[test]
    fn ranges_that_overflow_or_cannot_serve_the_pools_are_refused() {
        let t = topology();
        let s = &t.sandbox;
        assert_eq!(UidRange::for_runner(s, 0, 0), Err(UidRangeError::NoBlocks));
        let all_blocks = (i32::MAX as u32 - s.uid_base + 1) / s.uid_span;
        // The very last whole block still holds job uids; one past it does not.
        let last = UidRange::for_runner(s, all_blocks - 1, 1).unwrap();
        assert!(last.uids().1 <= i32::MAX as u32);
        for (index, blocks) in [(all_blocks, 1), (2, all_blocks / 2), (u32::MAX, u32::MAX)] {
            assert!(
                matches!(
                    UidRange::for_runner(s, index, blocks),
                    Err(UidRangeError::Overflow { .. })
                ),
                "index {index} × {blocks} blocks was accepted"
            );
        }
        let small = UidRange::for_runner(s, 0, 7).unwrap();
        assert_eq!(
            small.check_holds(4),
            Err(UidRangeError::TooSmall {
                blocks: 7,
                containers: 4
            })
        );
        assert_eq!(small.check_holds(3), Ok(()));
    }
}
