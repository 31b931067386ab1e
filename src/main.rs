use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use deskbridge::output::{self, Format, FormatArgs};
use deskbridge::{config_cmd, demo, ops, serve, settings, stack};
use deskbridge_shared::infra;

/// deskbridge: helpdesk → Brevo connector. Runs the Lambda handlers locally and operates a deployment.
#[derive(Debug, Parser)]
#[command(name = "deskbridge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The deployed stack whose resources a command uses.
#[derive(Debug, Args)]
struct Stack {
    /// CloudFormation stack whose outputs (state table, queues, secret) to use; a variable set in
    /// the environment wins over the output.
    #[arg(long = "stack-name", env = "DESKBRIDGE_STACK", value_name = "STACK")]
    name: Option<String>,
}

/// A helpdesk with an API to sync from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SyncSource {
    Zendesk,
    Intercom,
    Gorgias,
}

/// What `check` tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CheckArg {
    Zendesk,
    Intercom,
    Gorgias,
    Brevo,
    All,
}

impl CheckArg {
    fn target(self) -> deskbridge::admin::CheckTarget {
        use deskbridge::admin::CheckTarget;
        use deskbridge_shared::model::Source;
        match self {
            CheckArg::Zendesk => CheckTarget::Source(Source::Zendesk),
            CheckArg::Intercom => CheckTarget::Source(Source::Intercom),
            CheckArg::Gorgias => CheckTarget::Source(Source::Gorgias),
            CheckArg::Brevo => CheckTarget::Brevo,
            CheckArg::All => CheckTarget::All,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the state table and the queues with their DLQs where missing (at AWS_ENDPOINT_URL
    /// when set) and print STATE_TABLE=…, UPSERT_QUEUE_URL=…, SYNC_QUEUE_URL=… lines to eval.
    Bootstrap {
        /// Name prefix of the table and queues.
        #[arg(long, default_value = "deskbridge", env = "DESKBRIDGE_PREFIX")]
        prefix: String,
    },
    /// Local runner: the webhook handler on 127.0.0.1 and a worker polling the upsert queue.
    Serve {
        /// Port of the webhook handler on 127.0.0.1.
        #[arg(long, default_value_t = 3000, env = "DESKBRIDGE_PORT")]
        port: u16,
    },
    /// Start a sync run, as the schedule does (the sync function, or `deskbridge serve`, runs it).
    Sync {
        /// The helpdesk to read.
        #[arg(value_enum)]
        source: SyncSource,
        /// Read everything again instead of continuing from the bookmark.
        #[arg(long)]
        full: bool,
        /// Only this stream (e.g. tickets).
        #[arg(long)]
        stream: Option<String>,
        /// Follow the run until it finishes, at most this many seconds.
        #[arg(long)]
        wait: Option<u64>,
        #[command(flatten)]
        stack: Stack,
    },
    /// Per stream: state, cursor, last run, records read, contacts and events written, skipped, failed.
    Status {
        /// Refresh every 2 seconds.
        #[arg(long, conflicts_with = "json")]
        watch: bool,
        #[command(flatten)]
        format: FormatArgs,
        #[command(flatten)]
        stack: Stack,
    },
    /// Send the sample webhook events (API Gateway v2 request files), freshly signed with the
    /// secrets in the environment, to a running `deskbridge serve`, and wait until they are handled.
    Demo {
        /// Base URL of the local runner.
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        /// Seconds to wait for the upsert queue to drain.
        #[arg(long, default_value_t = 60)]
        wait: u64,
        /// Event files; default: events/webhook-*.json.
        files: Vec<PathBuf>,
    },
    /// The Brevo attributes and lists the mapping writes, compared with the account (needs
    /// BREVO_API_KEY); --apply creates the missing attributes.
    Plan {
        /// Create the missing attributes (lists are only reported).
        #[arg(long)]
        apply: bool,
        #[command(flatten)]
        format: FormatArgs,
        #[command(flatten)]
        stack: Stack,
    },
    /// The configuration file of a deployed stack.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Connection test, one line per check; exits non-zero when a check fails.
    Check {
        /// What to check; all of them when omitted.
        #[arg(value_enum, default_value = "all")]
        target: CheckArg,
        #[command(flatten)]
        format: FormatArgs,
        #[command(flatten)]
        stack: Stack,
    },
    /// Move dead-lettered messages back to their queue (DLQs from UPSERT_DLQ_URL / SYNC_DLQ_URL,
    /// else from the queues' redrive policies).
    Replay {
        /// Count and show what would move; move nothing.
        #[arg(long)]
        dry_run: bool,
        /// Which dead-letter queue(s).
        #[arg(long, value_enum, default_value = "both")]
        queue: deskbridge::admin::ReplayQueue,
        #[command(flatten)]
        format: FormatArgs,
        #[command(flatten)]
        stack: Stack,
    },
    /// Bring the state table up to this version's layout: makes sent-event records written by
    /// earlier versions permanent (they carried a 30-day expiry). Safe to run while the
    /// stack runs, and again.
    Migrate {
        #[command(flatten)]
        stack: Stack,
    },
    /// Print a shell completion script (e.g. `deskbridge completions bash > /etc/bash_completion.d/deskbridge`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Check a configuration file and make it the one the deployed functions read (they pick it
    /// up within five minutes). Nothing is written when the file has a problem.
    Push {
        /// The file; default: DESKBRIDGE_CONFIG when it is a path.
        file: Option<PathBuf>,
        #[command(flatten)]
        stack: Stack,
    },
    /// Print the configuration the deployed functions read.
    Show {
        #[command(flatten)]
        stack: Stack,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Bootstrap { prefix } => {
            output::init_logs();
            let sdk = deskbridge_shared::aws::sdk_config().await;
            let created = infra::bootstrap(
                &aws_sdk_dynamodb::Client::new(&sdk),
                &aws_sdk_sqs::Client::new(&sdk),
                &infra::Names::new(&prefix),
            )
            .await?;
            for line in created.env_lines() {
                println!("{line}");
            }
        }
        Command::Serve { port } => {
            output::init_logs();
            let (sdk, settings) = settings::load().await?;
            serve::run(&sdk, settings, port, serve::shutdown_signal()).await?;
        }
        Command::Sync {
            source,
            full,
            stream,
            wait,
            stack,
        } => {
            let needed: &[&str] = if wait.is_some() {
                &["SYNC_QUEUE_URL", "STATE_TABLE"]
            } else {
                &["SYNC_QUEUE_URL"]
            };
            let (sdk, settings, _) =
                settings::load_for(stack.name.as_deref(), "sync", needed).await?;
            let source = match source {
                SyncSource::Zendesk => "zendesk",
                SyncSource::Intercom => "intercom",
                SyncSource::Gorgias => "gorgias",
            };
            ops::sync(
                &sdk,
                &settings,
                source,
                stream,
                full,
                wait.map(std::time::Duration::from_secs),
            )
            .await?;
        }
        Command::Status {
            watch,
            format,
            stack,
        } => {
            let format = format.resolve();
            if watch && format == Format::Json {
                anyhow::bail!("--watch refreshes a view; --format json prints one document");
            }
            let (sdk, settings, _) =
                settings::load_for(stack.name.as_deref(), "status", &["STATE_TABLE"]).await?;
            ops::status(&sdk, &settings, watch, format).await?;
        }
        Command::Migrate { stack } => {
            let (sdk, settings, _) =
                settings::load_for(stack.name.as_deref(), "migrate", &["STATE_TABLE"]).await?;
            ops::migrate(&sdk, &settings).await?;
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "deskbridge",
                &mut std::io::stdout(),
            );
        }
        Command::Demo { url, wait, files } => {
            let files = if files.is_empty() {
                demo::default_files().context("listing events/")?
            } else {
                files
            };
            let (sdk, settings) = settings::load().await?;
            demo::run(
                &sdk,
                &settings,
                &url,
                &files,
                std::time::Duration::from_secs(wait),
            )
            .await?;
        }
        Command::Plan {
            apply,
            format,
            stack,
        } => {
            let format = format.resolve();
            let (sdk, settings, _) = settings::load_for(stack.name.as_deref(), "plan", &[]).await?;
            // With a stack: the deployed configuration is checked and compared with the local
            // file (DESKBRIDGE_CONFIG as a path), which is what the plan below then uses.
            let mut drift = false;
            let mut configuration = serde_json::Value::Null;
            if let Some(name) = stack.name.as_deref().filter(|n| !n.trim().is_empty()) {
                let env = deskbridge_shared::config::Vars::from_env();
                let from_stack = stack::variables(&sdk, name).await?;
                let arn = config_cmd::target_secret(Some(name), &from_stack, &env)?;
                let deployed = config_cmd::deployed_text(&sdk, &arn).await?;
                let local = match config_cmd::local_file(None, &env) {
                    Some(path) => Some((
                        std::fs::read_to_string(&path)
                            .with_context(|| format!("reading {}", path.display()))?,
                        path,
                    )),
                    None => None,
                };
                let mut said = Vec::new();
                drift = config_cmd::report(
                    name,
                    local
                        .as_ref()
                        .map(|(text, path)| (path.as_path(), text.as_str())),
                    &deployed,
                    &mut said,
                )?;
                let said = String::from_utf8_lossy(&said).into_owned();
                if format == Format::Json {
                    configuration = serde_json::json!({
                        "stack": name,
                        "local_file": local.as_ref().map(|(_, path)| path.display().to_string()),
                        "differs": drift,
                        "report": said.lines().collect::<Vec<_>>(),
                    });
                } else {
                    print!("{said}");
                }
            }
            let Some(brevo) = deskbridge::admin::brevo_client(&settings)? else {
                anyhow::bail!(deskbridge::admin::PLAN_NEEDS_KEY);
            };
            let report = deskbridge::admin::plan_report(&settings, &brevo, apply).await?;
            let mut stdout = std::io::stdout().lock();
            if format == Format::Json {
                let mut document = serde_json::to_value(&report)?;
                if let Some(fields) = document.as_object_mut() {
                    fields.insert("configuration".into(), configuration);
                }
                output::write_json(&mut stdout, &document)?;
            } else {
                report.write_plain(&mut stdout)?;
            }
            drop(stdout);
            let summary = report.summary;
            if summary.failed > 0 {
                anyhow::bail!("{} attributes could not be created", summary.failed);
            }
            if drift {
                anyhow::bail!(
                    "the local configuration differs from the deployed one (deskbridge config push deploys it)"
                );
            }
            if summary.drift() > 0 {
                anyhow::bail!(
                    "Brevo does not match the mapping: {} missing, {} wrong type{}",
                    summary.missing.saturating_sub(summary.created),
                    summary.wrong_type,
                    if apply {
                        ""
                    } else {
                        " (deskbridge plan --apply creates missing attributes)"
                    }
                );
            }
        }
        Command::Config { action } => {
            let sdk = deskbridge_shared::aws::sdk_config().await;
            let env = deskbridge_shared::config::Vars::from_env();
            let (file, stack) = match &action {
                ConfigAction::Push { file, stack } => (file.as_deref(), stack),
                ConfigAction::Show { stack } => (None, stack),
            };
            let name = stack.name.as_deref().filter(|n| !n.trim().is_empty());
            let from_stack = match name {
                Some(name) => stack::variables(&sdk, name).await?,
                None => Default::default(),
            };
            let arn = config_cmd::target_secret(name, &from_stack, &env)?;
            match action {
                ConfigAction::Push { .. } => {
                    let Some(path) = config_cmd::local_file(file, &env) else {
                        anyhow::bail!(
                            "name the file to push (or set DESKBRIDGE_CONFIG to its path)"
                        );
                    };
                    config_cmd::push(&sdk, &path, &arn, &mut std::io::stdout()).await?;
                }
                ConfigAction::Show { .. } => {
                    print!("{}", config_cmd::deployed_text(&sdk, &arn).await?);
                }
            }
        }
        Command::Check {
            target,
            format,
            stack,
        } => {
            let format = format.resolve();
            let (_sdk, settings, _) =
                settings::load_for(stack.name.as_deref(), "check", &[]).await?;
            let summary = if format == Format::Json {
                let summary =
                    deskbridge::admin::check(&settings, &target.target(), &mut std::io::sink())
                        .await?;
                output::write_json(
                    &mut std::io::stdout().lock(),
                    &serde_json::to_value(&summary)?,
                )?;
                summary
            } else {
                deskbridge::admin::check(&settings, &target.target(), &mut std::io::stdout())
                    .await?
            };
            if summary.failed > 0 {
                anyhow::bail!(
                    "{} of {} checks failed",
                    summary.failed,
                    summary.failed + summary.passed
                );
            }
        }
        Command::Replay {
            dry_run,
            queue,
            format,
            stack,
        } => {
            let format = format.resolve();
            let needed: &[&str] = match queue {
                deskbridge::admin::ReplayQueue::Both => &["UPSERT_QUEUE_URL", "SYNC_QUEUE_URL"],
                deskbridge::admin::ReplayQueue::Upsert => &["UPSERT_QUEUE_URL"],
                deskbridge::admin::ReplayQueue::Sync => &["SYNC_QUEUE_URL"],
            };
            let (sdk, settings, vars) =
                settings::load_for(stack.name.as_deref(), "replay", needed).await?;
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let targets = deskbridge::admin::replay_targets(
                &settings,
                queue,
                |name| vars.get(name),
                Some(&sqs),
            )
            .await?;
            let options = deskbridge::admin::ReplayOptions {
                dry_run,
                ..Default::default()
            };
            let queue = deskbridge_shared::queue::SqsQueue::new(sqs);
            if format == Format::Json {
                let counts =
                    deskbridge::admin::replay(&queue, &targets, &options, &mut std::io::sink())
                        .await?;
                output::write_json(
                    &mut std::io::stdout().lock(),
                    &serde_json::json!({ "dry_run": dry_run, "queues": counts }),
                )?;
            } else {
                deskbridge::admin::replay(&queue, &targets, &options, &mut std::io::stdout())
                    .await?;
            }
        }
    }
    Ok(())
}
