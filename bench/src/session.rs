//! One run from start to end: prepare the services, measure every cell, the burst and judge
//! mode, stop the services, write the results and the report.

use crate::bench_topology::{bench_topology, exec_twin};
use crate::burst::{BurstSpec, Watched};
use crate::cell::{CellSpec, JobFn};
use crate::docs_section::{replace_judge_section, replace_section};
use crate::judge_bench::{JudgeBenchSpec, JudgeResult};
use crate::options::{Options, PathKind};
use crate::proc_stats::CpuMeter;
use crate::results::{BenchResults, BurstResult, CellResult};
use crate::service_stack::{ServiceStack, StackPaths, RUNNER_ID};
use crate::workload::Workload;
use crate::{
    burst, cell, floor, judge_bench, judge_report, machine, naive_cli, naive_engine, project,
    report,
};
use anyhow::{anyhow, Context};
use bollard::Docker;
use rce_protocol::topology::Topology;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The repository: the working directory when it is one (bench/run.sh runs there), else the
/// checkout this binary was built from.
fn repo_root() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    if cwd.join("topology.yaml").is_file() && cwd.join("bench").is_dir() {
        return cwd;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(cwd)
}

/// `$CARGO_TARGET_DIR` (relative to the repository when relative), else `target/`.
fn target_dir(repo: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => repo.join(dir),
        None => repo.join("target"),
    }
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let repo = repo_root();
    let target = target_dir(&repo);
    let out_dir = target.join("bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    if let Some(json) = &options.from_json {
        let text =
            std::fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?;
        let results: BenchResults = serde_json::from_str(&text).context("not a results.json")?;
        return write_report(&repo, &results);
    }

    let started = Instant::now();
    let date = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let machine = machine::describe();
    println!("rce-bench: {}", machine.summary());
    if options.quick && options.load_generator() {
        println!(
            "quick run: {} samples per fast cell, {} per naive cell, burst {}",
            options.samples, options.naive_samples, options.burst
        );
    }

    let source =
        std::fs::read_to_string(repo.join("topology.yaml")).context("reading topology.yaml")?;
    let repo_topology = Topology::parse(&source, "topology.yaml")?;
    // The load generator's languages: none when only judge mode is measured.
    let measured: Vec<String> = if options.load_generator() {
        options.languages.clone()
    } else {
        Vec::new()
    };
    if options.judge_part() {
        println!(
            "judge mode: {} C++ tests, {} rounds, {} plain jobs for the naive way, inputs of {:?} MiB{}",
            options.judge_tests,
            options.judge_rounds,
            options.judge_naive,
            options.judge_input_mib,
            if options.judge_only { " (judge mode only)" } else { "" }
        );
    }
    let base_pools: BTreeMap<String, usize> = measured
        .iter()
        .filter_map(|l| Some((l.clone(), repo_topology.language(l)?.pool)))
        .collect();
    let topology_path = out_dir.join("topology.yaml");
    std::fs::write(
        &topology_path,
        bench_topology(&source, &measured, options.pool)?,
    )
    .with_context(|| format!("writing {}", topology_path.display()))?;
    let topology = Topology::load(&topology_path)?;
    let mut served: Vec<String> = measured
        .iter()
        .flat_map(|l| [l.clone(), exec_twin(l)])
        .collect();
    if options.judge_part() && !served.iter().any(|l| l == judge_bench::LANGUAGE) {
        served.push(judge_bench::LANGUAGE.to_string());
    }
    let exec_modes: BTreeMap<String, String> = served
        .iter()
        .filter_map(|id| {
            let mode = topology.language(id)?.exec_mode;
            Some((id.clone(), format!("{mode:?}").to_lowercase()))
        })
        .collect();

    let docker = Docker::connect_with_defaults()
        .context("docker engine")?
        .negotiate_version()
        .await
        .context("the docker engine does not answer (scripts/ensure-services.sh starts it)")?;
    let strays = naive_engine::remove_strays(&docker, RUNNER_ID).await?;
    if strays > 0 {
        println!("removed {strays} containers an earlier run left behind");
    }
    crate::service_stack::reset_broker_and_store()?;

    let paths = StackPaths {
        repo: repo.clone(),
        binaries: target.join("release"),
        out_dir: out_dir.clone(),
        topology: topology_path,
    };
    let measuring = measure_everything(
        &options,
        &paths,
        &served,
        &topology,
        docker.clone(),
        &out_dir,
    );
    let measured = tokio::select! {
        measured = measuring => measured,
        signal = stopped_by_signal() => Err(anyhow!("stopped by {signal}")),
    };
    // Whatever happened, nothing of the run stays behind (the runner removes its own on SIGTERM).
    naive_engine::remove_strays(&docker, RUNNER_ID).await.ok();
    let (cells, burst, judge) = measured.inspect_err(|_| {
        eprintln!(
            "logs: api {}, runner {}",
            out_dir.join("api.log").display(),
            out_dir.join("runner.log").display()
        );
    })?;

    let results = BenchResults {
        command: options.command.clone(),
        date,
        options: options.clone(),
        machine,
        exec_modes,
        base_pools,
        cells,
        burst,
        judge,
        duration_secs: started.elapsed().as_secs_f64(),
    };
    // A judge-only run keeps the last full run's results.json.
    let json_path = out_dir.join(if options.judge_only {
        "results-judge.json"
    } else {
        "results.json"
    });
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("\nresults: {}", json_path.display());
    if options.write_docs {
        write_report(&repo, &results)?;
    }
    let failures: usize = results.cells.iter().map(|c| c.failures).sum();
    let lost = results.burst.as_ref().map_or(0, |b| b.lost);
    let judge_failures = results.judge.as_ref().map_or(0, JudgeResult::failures);
    println!(
        "done in {:.0} s; {failures} failed jobs in the cells, {lost} lost in the burst, {judge_failures} failures in judge mode",
        results.duration_secs
    );
    if let Some(judge) = &results.judge {
        for e in &judge.errors {
            eprintln!("judge mode: {e}");
        }
    }
    if failures > 0 || lost > 0 || judge_failures > 0 {
        anyhow::bail!(
            "{failures} measured jobs failed, {lost} burst jobs were lost and judge mode had {judge_failures} failures (see the report)"
        );
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM, so the run stops its services on the way out instead of
/// leaving them (and their warm containers) behind.
async fn stopped_by_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => t.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = term => "SIGTERM",
    }
}

/// Starts the services, runs every cell and the burst, and stops the services again (on an
/// error too: the stack stops when dropped).
async fn measure_everything(
    options: &Options,
    paths: &StackPaths,
    served: &[String],
    topology: &Topology,
    docker: Docker,
    out_dir: &Path,
) -> anyhow::Result<(Vec<CellResult>, Option<BurstResult>, Option<JudgeResult>)> {
    let pools = match (options.load_generator(), options.judge_part()) {
        (true, true) => format!("pools of {}, cpp's as in topology.yaml", options.pool),
        (true, false) => format!("pools of {}", options.pool),
        _ => "the pool as in topology.yaml".to_string(),
    };
    println!(
        "starting api and runner (serving {}; {pools})...",
        served.join(", ")
    );
    let t = Instant::now();
    let stack = ServiceStack::start(paths, served).await?;
    println!(
        "ready in {:.1} s: api {} (pid {}), runner {} (pid {}); logs in {}",
        t.elapsed().as_secs_f64(),
        stack.api_url,
        stack.api_pid(),
        stack.runner_url,
        stack.runner_pid(),
        out_dir.display()
    );
    let cpu = CpuMeter::new(vec![stack.api_pid(), stack.runner_pid()]);
    let client = project::http_client(options.burst_in_flight.max(16))?;
    let mut cells = Vec::new();
    let paths_measured: &[PathKind] = if options.load_generator() {
        &options.paths
    } else {
        &[]
    };
    for &path in paths_measured {
        println!("\n{}", path.label());
        for language in &options.languages {
            let workload = Workload::of(language)
                .with_context(|| format!("no bench program for {language}"))?;
            let job =
                path_job(path, &workload, &stack, topology, &client, &docker, out_dir).await?;
            for &concurrency in &options.concurrency {
                let (jobs, warmup) = if path.is_naive() {
                    (options.naive_samples, concurrency)
                } else {
                    (options.samples, options.warmup.max(concurrency))
                };
                let spec = CellSpec {
                    path,
                    language: language.clone(),
                    concurrency,
                    warmup,
                    jobs,
                };
                let result = cell::measure(spec, job.clone(), &cpu).await;
                print_cell(&result);
                cells.push(result);
            }
        }
    }

    let mut burst = None;
    if options.burst > 0 && options.load_generator() {
        let language = options
            .languages
            .iter()
            .find(|l| *l == "python")
            .unwrap_or(&options.languages[0]);
        let workload = Workload::of(language).context("burst program")?;
        let queue_max_length = topology
            .language(language)
            .map_or(0, |l| l.queue_max_length);
        println!(
            "\nburst: {} submissions of {language}, {} in flight",
            options.burst, options.burst_in_flight
        );
        let spec = BurstSpec {
            api_url: stack.api_url.clone(),
            language: language.clone(),
            source: workload.source.to_string(),
            expected: workload.expected_stdout,
            submissions: options.burst,
            in_flight: options.burst_in_flight,
            drain_timeout: options.drain_timeout(),
            queue_max_length,
        };
        let pids = Watched {
            api: stack.api_pid(),
            runner: stack.runner_pid(),
        };
        let b = burst::run(client.clone(), spec, &cpu, pids).await;
        println!(
            "  admission {:.0}/s, {} × 503, submit p99 {:.1} ms, drained in {:.1} s ({:.1} jobs/s), lost {}, not ok {:?}, peak RSS api {} KiB runner {} KiB",
            b.admission_per_sec,
            b.rejected_503,
            b.submit_latency.as_ref().map_or(0.0, |l| l.p99),
            b.drain_secs,
            b.completed_per_sec,
            b.lost,
            b.not_ok,
            b.api_peak_rss_kb,
            b.runner_peak_rss_kb
        );
        burst = Some(b);
    }
    let mut judge = None;
    if options.judge_part() {
        let pool = topology
            .language(judge_bench::LANGUAGE)
            .map_or(0, |l| l.pool);
        println!(
            "\njudge mode: C++ a+b, {} tests; the cpp pool has {pool} warm containers",
            options.judge_tests
        );
        let spec = JudgeBenchSpec {
            api_url: stack.api_url.clone(),
            tests: options.judge_tests,
            rounds: options.judge_rounds,
            naive_jobs: options.judge_naive.min(options.judge_tests),
            naive_concurrency: pool.max(1),
            input_bytes: options
                .judge_input_mib
                .iter()
                .map(|&m| m as u64 * (1 << 20))
                .collect(),
            out_dir: out_dir.to_path_buf(),
            repeat_runs: options.judge_repeat,
            pool,
        };
        judge = Some(judge_bench::run(&spec, &cpu).await);
    }
    println!("\nstopping api and runner...");
    stack.stop().await;
    Ok((cells, burst, judge))
}

/// The job of one path for one language.
async fn path_job(
    path: PathKind,
    workload: &Workload,
    stack: &ServiceStack,
    topology: &Topology,
    client: &reqwest::Client,
    docker: &Docker,
    out_dir: &Path,
) -> anyhow::Result<JobFn> {
    let language = workload.language;
    let expected = workload.expected_stdout;
    let naive_body = || -> anyhow::Result<_> {
        let spec = topology
            .language(language)
            .with_context(|| format!("{language} is not in the topology"))?;
        Ok(naive_engine::naive_body(
            &spec,
            &topology.sandbox,
            &workload.container_argv(),
        ))
    };
    Ok(match path {
        PathKind::Floor => floor::prepare(workload, out_dir).await?,
        PathKind::Agent => project::job(
            client.clone(),
            &stack.api_url,
            language,
            workload.source,
            expected,
        ),
        PathKind::Exec => project::job(
            client.clone(),
            &stack.api_url,
            &exec_twin(language),
            workload.source,
            expected,
        ),
        PathKind::NaiveApi => naive_engine::job(docker.clone(), naive_body()?, expected),
        PathKind::NaiveCli => naive_cli::job(
            naive_cli::docker_run_argv(&naive_body()?, &workload.container_argv()),
            expected,
        ),
    })
}

fn print_cell(c: &CellResult) {
    let l = c.latency.as_ref();
    let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1}"));
    println!(
        "  {:<7} c={}  n={:<4} p50 {:>7} p90 {:>7} p99 {:>7} ms  {:>8.1} jobs/s  failed {}  cpu/job ms: api+runner {:.2}, engine {:.2}, machine {:.2}{}",
        c.language,
        c.concurrency,
        c.jobs,
        f(l.map(|l| l.p50)),
        f(l.map(|l| l.p90)),
        f(l.map(|l| l.p99)),
        c.jobs_per_sec,
        c.failures,
        c.cpu_per_job.service_ms,
        c.cpu_per_job.docker_ms,
        c.cpu_per_job.host_ms,
        c.program.as_ref().map_or(String::new(), |p| format!(
            "; program run {:.1} ms wall, {:.1} ms cpu{}",
            p.run_wall_ms,
            p.run_cpu_ms,
            p.compile_wall_ms.map_or(String::new(), |w| format!(", compile {w:.1} ms wall"))
        )),
    );
    for e in &c.errors {
        println!("    error: {e}");
    }
}

/// The section of docs/benchmarks.md and the plots under docs/bench/.
fn write_report(repo: &Path, results: &BenchResults) -> anyhow::Result<()> {
    let page = repo.join("docs/benchmarks.md");
    let mut doc =
        std::fs::read_to_string(&page).with_context(|| format!("reading {}", page.display()))?;
    if let Some(section) = judge_report::markdown(results) {
        doc = replace_judge_section(&doc, &section);
    }
    if results.cells.is_empty() && results.burst.is_none() {
        // Judge mode alone: the load generator's section and plots stay as they are.
        std::fs::write(&page, doc).with_context(|| format!("writing {}", page.display()))?;
        println!("report: {} (the judge-mode section)", page.display());
        return Ok(());
    }
    std::fs::write(&page, replace_section(&doc, &report::markdown(results)))
        .with_context(|| format!("writing {}", page.display()))?;
    std::fs::create_dir_all(repo.join("docs/bench"))?;
    for (file, chart) in [
        (report::LATENCY_SVG, report::latency_chart(results)),
        (report::THROUGHPUT_SVG, report::throughput_chart(results)),
    ] {
        std::fs::write(repo.join(file), crate::svg_plot::render(&chart))
            .with_context(|| format!("writing {file}"))?;
    }
    println!(
        "report: {} (section between the bench markers), {}, {}",
        page.display(),
        report::LATENCY_SVG,
        report::THROUGHPUT_SVG
    );
    Ok(())
}
