//! The `tidewater` command.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tidewater::config::Config;
use tidewater::pipeline::{Ending, Pipeline};
use tidewater::schema::TableSchema;
use tidewater::stats::Stats;

const EXAMPLES: &str = "\
Examples:
  # Ship the bundled sample logs into a local Parquet lake, then exit
  tidewater run --once --config examples/quickstart.toml

  # Follow logs until SIGTERM (a Kubernetes sidecar or DaemonSet)
  tidewater run --config /etc/tidewater/tidewater.toml

  # Check a configuration without running it
  tidewater validate --config tidewater.toml

  # Print the table schema (Arrow, or BigQuery JSON for `bq mk`)
  tidewater schema --format bigquery";

/// Tails container logs and ships them to a Parquet data lake, at least once.
#[derive(Parser)]
#[command(name = "tidewater", version, about, after_help = EXAMPLES)]
struct Cli {
    /// Log output: text on a terminal and JSON otherwise by default.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show, per file of a data dir's checkpoint, the committed offset, the
    /// file's size now and the lag (safe beside a running tidewater).
    Status {
        #[arg(long)]
        data_dir: PathBuf,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Consume error events from RabbitMQ and post them to Slack (the
    /// `[notify]` table of the configuration).
    #[cfg(feature = "amqp")]
    Notify {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Tail, parse and deliver logs.
    Run {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Read every matched file to its end, deliver everything, write the
        /// checkpoint and exit (backfills, benchmarks).
        #[arg(long)]
        once: bool,
    },
    /// Check a configuration file and exit: 0 when it is valid, 2 otherwise.
    Validate {
        #[arg(long, short)]
        config: PathBuf,
        /// Also reach every sink's destination, writing nothing: list a lake
        /// and read its newest object's footer, read a BigQuery table's
        /// definition, log in to a broker. Exit 1 if one cannot be reached.
        #[arg(long)]
        connect: bool,
    },
    /// Print the table schema.
    Schema {
        #[arg(long, value_enum, default_value_t = SchemaFormat::Arrow)]
        format: SchemaFormat,
        /// Include the extra columns and schema file of this configuration.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The table of this sink of the configuration: the global columns
        /// plus its inputs' own (`[[sources.<name>.columns]]`).
        #[arg(long, requires = "config")]
        sink: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum SchemaFormat {
    Arrow,
    Bigquery,
}

/// Exit code for an unusable configuration.
const CONFIG_ERROR: u8 = 2;

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // object_store, reqwest and lapin each bring rustls; with more than one
    // crypto backend compiled in, rustls needs to be told which to use.
    #[cfg(any(
        feature = "amqp",
        feature = "bigquery",
        feature = "s3",
        feature = "gcs"
    ))]
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match cli.command {
        Command::Status { data_dir, json } => match tidewater::status::status(&data_dir) {
            Ok(status) => {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&status).unwrap_or_default()
                    );
                } else {
                    print!("{}", tidewater::status::render(&status));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        #[cfg(feature = "amqp")]
        Command::Notify { config } => {
            let config = match tidewater::config::NotifyConfig::load(&config) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            let result = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")
                .and_then(|rt| rt.block_on(tidewater::notify::run(config)));
            match result {
                Ok(summary) => {
                    println!("{}", serde_json::to_string(&summary).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Validate { config, connect } => match Config::load(&config) {
            Ok(loaded) => {
                for warning in loaded.warnings(&std::env::current_dir().unwrap_or_default()) {
                    eprintln!("warning: {warning}");
                }
                println!("config OK: {}", config.display());
                if let Ok(routes) = loaded.routes() {
                    for (name, sink) in &routes.sinks {
                        println!("  sinks.{name} receives {}", sink.describe());
                    }
                }
                if connect {
                    return match connect_sinks(&loaded) {
                        Ok(true) => ExitCode::SUCCESS,
                        Ok(false) => ExitCode::FAILURE,
                        Err(e) => {
                            eprintln!("error: {e:#}");
                            ExitCode::FAILURE
                        }
                    };
                }
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Schema {
            format,
            config,
            sink,
        } => match print_schema(format, config.as_deref(), sink.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(CONFIG_ERROR)
            }
        },
        Command::Run { config, once } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            match run(config, once) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn config_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: invalid configuration: {e}");
    ExitCode::from(CONFIG_ERROR)
}

fn run(config: Config, once: bool) -> anyhow::Result<()> {
    let base_dir = std::env::current_dir().context("cannot read the working directory")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stats = Arc::new(Stats::default());
    let result = runtime.block_on(async {
        let Some(pipeline) = Pipeline::build(config, &base_dir).await? else {
            return Ok(Ending::StoppedWaiting);
        };
        let progress =
            (once && std::io::stderr().is_terminal()).then(|| spawn_progress(Arc::clone(&stats)));
        let ending = pipeline.run(once, Arc::clone(&stats)).await;
        if let Some(p) = progress {
            p.abort();
        }
        ending
    });
    let summary = stats.summary();
    println!("{}", serde_json::to_string(&summary).context("summary")?);
    match result? {
        Ending::Drained => tracing::info!(
            records = summary.records,
            rows_delivered = summary.rows_delivered,
            "done"
        ),
        Ending::DeadlineExceeded { in_flight } => {
            tracing::warn!(in_flight, "stopped before every batch was delivered")
        }
        Ending::StoppedWaiting => {
            tracing::info!("stopped while waiting for the data dir; nothing was read")
        }
    }
    Ok(())
}

/// `validate --connect`: one line per sink; `Ok(false)` if one failed.
fn connect_sinks(config: &Config) -> anyhow::Result<bool> {
    let base_dir = std::env::current_dir().context("cannot read the working directory")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let probes = runtime.block_on(tidewater::sinks::probe(config, &base_dir))?;
    let mut all_ok = true;
    for (name, probe) in probes {
        match probe {
            Ok(line) => println!("sinks.{name}: {line}"),
            Err(e) => {
                all_ok = false;
                let hint = if e.is_permanent() {
                    " (needs a fix: permissions, bucket or credentials)"
                } else {
                    ""
                };
                println!("sinks.{name}: UNREACHABLE: {e}{hint}");
            }
        }
    }
    Ok(all_ok)
}

/// A progress bar on stderr for `run --once`: bytes, records/s, ETA.
fn spawn_progress(stats: Arc<Stats>) -> tokio::task::JoinHandle<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    tokio::spawn(async move {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let started = std::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (read, total, records) = stats.progress();
            bar.set_length(total);
            bar.set_position(read);
            let rate = records as f64 / started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!("{rate:.0} records/s"));
        }
    })
}

fn print_schema(
    format: SchemaFormat,
    config: Option<&Path>,
    sink: Option<&str>,
) -> anyhow::Result<()> {
    let schema = match (config, sink) {
        (Some(c), Some(sink)) => {
            let config = Config::load(c)?;
            let mut routes = config.routes()?;
            let Some(plan) = routes.sinks.remove(sink) else {
                let names: Vec<&String> = config.sinks.keys().collect();
                anyhow::bail!(
                    "--sink {sink:?}: no such sink in {} (its sinks: {names:?})",
                    c.display()
                );
            };
            plan.schema
        }
        (Some(c), None) => {
            let config = Config::load(c)?;
            let schema = TableSchema::load(config.schema.as_deref(), &config.columns)?;
            if config.routes()?.sinks.values().any(|s| s.schema != schema) {
                eprintln!("note: this is the table before the sources' own columns; a sink's table may have more: see --sink NAME");
            }
            schema
        }
        _ => TableSchema::load(None, &[])?,
    };
    match format {
        SchemaFormat::Bigquery => println!("{}", schema.to_bigquery_json()),
        SchemaFormat::Arrow => {
            for field in schema.arrow().fields() {
                let null = if field.is_nullable() { "" } else { " not null" };
                println!("{}: {}{null}", field.name(), field.data_type());
            }
        }
    }
    Ok(())
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("TIDEWATER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// glibc's malloc, tuned for a pipeline of a few threads passing
/// batch-sized buffers to each other (BENCHMARKS.md, issue 16):
/// - one arena: by default each thread that allocates at once gets an arena
///   of its own (up to eight per core), and memory freed into one is not
///   reused by another, so peak RSS carried their slack;
/// - a fixed 1 MiB mmap threshold: blocks this large (a batch's text
///   buffers, encoded pages) are mapped and unmapped, so they go back to
///   the kernel when freed. glibc's default raises the threshold to the
///   largest block freed, after which such blocks stay in the heap.
///
/// Together: 47-57 MiB instead of 77-91 MiB peak RSS on the end-to-end
/// job. The price is page faults on those large blocks, which
/// `tidewater::recycle` avoids for the largest (a batch's text) and the
/// Parquet sink's 256 KiB pages avoid for its page buffers;
/// BENCHMARKS.md gives the CPU a larger threshold saves, for an operator
/// who would rather pay memory. An operator's own `MALLOC_ARENA_MAX`,
/// `MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES` setting wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let unset =
        |var: &str, tunable: &str| std::env::var_os(var).is_none() && !tunables.contains(tunable);
    // SAFETY: mallopt only sets malloc tunables; it is called before any
    // other thread exists.
    unsafe {
        if unset("MALLOC_ARENA_MAX", "arena_max") {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
        if unset("MALLOC_MMAP_THRESHOLD_", "mmap_threshold") {
            // The pool recycles exactly the blocks this threshold maps.
            let threshold = tidewater::recycle::MIN_BYTES as libc::c_int;
            libc::mallopt(libc::M_MMAP_THRESHOLD, threshold);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}
