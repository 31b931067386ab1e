use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use deskbridge::output::{self, Format, FormatArgs};
use deskbridge::{commands, settings};

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

/// A helpdesk with an API to sync from: a built-in one, a further account of one, or a generic
/// source whose `pull` block the configuration file gives.
fn sync_source(name: &str) -> Result<String, String> {
    use deskbridge_shared::model::Source;
    match name.parse::<Source>() {
        Ok(Source::Added(_)) | Err(_) => Err(format!(
            "`{name}` is not a source to sync: zendesk, intercom, gorgias, \
             <helpdesk>:<account> or generic:<name>"
        )),
        Ok(source) => Ok(source.to_string()),
    }
}

/// What `check` tests: a helpdesk (zendesk, intercom, gorgias), a further account of one
/// (`zendesk:<account>`), brevo, or all of them.
fn check_target(name: &str) -> Result<commands::check::CheckTarget, String> {
    use deskbridge_shared::model::Source;
    let refused = || {
        format!(
            "`{name}` is not something to check: zendesk, intercom, gorgias, \
             <helpdesk>:<account> (zendesk:brand2), brevo or all"
        )
    };
    match name.parse::<commands::check::CheckTarget>() {
        Ok(commands::check::CheckTarget::Source(Source::Added(_))) => Err(refused()),
        Ok(target) => Ok(target),
        Err(e) if e.is::<deskbridge_shared::model::UnknownSource>() => Err(refused()),
        Err(e) => Err(e.to_string()),
    }
}

/// What `connect` registers deskbridge with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ConnectArg {
    Brevo,
}

/// Every stream name of the built-in helpdesks, for `--stream`'s completion and error (which
/// streams a source has is checked when the sync is asked for).
fn stream_names() -> clap::builder::PossibleValuesParser {
    let mut names: Vec<&'static str> = deskbridge_shared::helpdesk::Registry::built_in()
        .listed()
        .flat_map(|h| h.streams().iter().copied())
        .collect();
    names.sort_unstable();
    names.dedup();
    clap::builder::PossibleValuesParser::new(names)
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
        /// The helpdesk to read: zendesk, intercom, gorgias, a further account of one
        /// (<helpdesk>:<account>), or generic:<name> (a source whose API the configuration file
        /// describes under `pull`).
        #[arg(value_parser = sync_source)]
        source: String,
        /// Read everything again instead of continuing from the bookmark.
        #[arg(long, conflicts_with = "since")]
        full: bool,
        /// Only this stream (e.g. tickets); repeat for several.
        #[arg(long, alias = "resources", value_parser = stream_names())]
        stream: Vec<String>,
        /// Read what changed from this day or time on (2026-11-01, or RFC 3339) instead of
        /// continuing from the bookmark: a repair of a known window.
        #[arg(long, value_parser = commands::sync::parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Records per page to ask the helpdesk for (capped at its API's maximum).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        batch_size: Option<u32>,
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
    /// Print, without sending, the Brevo requests a webhook delivery (an events/ request file or
    /// a bare body with --source) or a queued job would produce under the current configuration.
    Preview {
        /// The delivery or job, as JSON.
        file: PathBuf,
        /// The source of a bare webhook body (zendesk, intercom, gorgias, generic:<name>).
        #[arg(long)]
        source: Option<String>,
        /// Look people named by id only up in the helpdesk's API (needs its credentials).
        #[arg(long)]
        lookup: bool,
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
        /// What to check: zendesk, intercom, gorgias, a further account of one
        /// (<helpdesk>:<account>), brevo, or all (the default).
        #[arg(value_parser = check_target, default_value = "all")]
        target: commands::check::CheckTarget,
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
        queue: commands::replay::ReplayQueue,
        #[command(flatten)]
        format: FormatArgs,
        #[command(flatten)]
        stack: Stack,
    },
    /// Register deskbridge with Brevo: creates the marketing webhook that posts unsubscribes,
    /// spam complaints and hard bounces to {base}/webhooks/brevo with BREVO_WEBHOOK_TOKEN as its
    /// bearer token, or sets the events and token of the one already there (run it again freely).
    Connect {
        /// What to connect.
        #[arg(value_enum)]
        target: ConnectArg,
        /// The webhook base URL (default: the stack's WebhookBaseUrl output).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
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
            commands::bootstrap::run(&sdk, &prefix).await?;
        }
        Command::Serve { port } => {
            output::init_logs();
            let (sdk, settings) = settings::load().await?;
            commands::serve::run(&sdk, settings, port, commands::serve::shutdown_signal()).await?;
        }
        Command::Sync {
            source,
            full,
            stream,
            since,
            batch_size,
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
            let request = commands::sync::SyncRequest {
                streams: stream,
                full,
                since,
                batch_size,
            };
            commands::sync::sync(
                &sdk,
                &settings,
                &source,
                &request,
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
            commands::status::status(&sdk, &settings, watch, format).await?;
        }
        Command::Connect {
            target: ConnectArg::Brevo,
            url,
            format,
            stack,
        } => {
            if format.resolve() == Format::Json {
                let registered = commands::connect::run(
                    stack.name.as_deref(),
                    url.as_deref(),
                    &mut std::io::sink(),
                )
                .await?;
                output::write_json(
                    &mut std::io::stdout().lock(),
                    &serde_json::to_value(&registered)?,
                )?;
            } else {
                commands::connect::run(
                    stack.name.as_deref(),
                    url.as_deref(),
                    &mut std::io::stdout(),
                )
                .await?;
            }
        }
        Command::Migrate { stack } => {
            let (sdk, settings, _) =
                settings::load_for(stack.name.as_deref(), "migrate", &["STATE_TABLE"]).await?;
            commands::migrate::migrate(&sdk, &settings).await?;
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
                commands::demo::default_files().context("listing events/")?
            } else {
                files
            };
            let (sdk, settings) = settings::load().await?;
            commands::demo::run(
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
        } => commands::plan::run(stack.name.as_deref(), apply, format.resolve()).await?,
        Command::Preview {
            file,
            source,
            lookup,
            format,
            stack,
        } => {
            commands::preview::run(
                stack.name.as_deref(),
                &file,
                source.as_deref(),
                lookup,
                format.resolve(),
            )
            .await?;
        }
        Command::Config { action } => match action {
            ConfigAction::Push { file, stack } => {
                commands::config::run_push(stack.name.as_deref(), file.as_deref()).await?;
            }
            ConfigAction::Show { stack } => {
                commands::config::run_show(stack.name.as_deref()).await?;
            }
        },
        Command::Check {
            target,
            format,
            stack,
        } => {
            commands::check::run(stack.name.as_deref(), &target, format.resolve()).await?;
        }
        Command::Replay {
            dry_run,
            queue,
            format,
            stack,
        } => commands::replay::run(stack.name.as_deref(), queue, dry_run, format.resolve()).await?,
    }
    Ok(())
}
