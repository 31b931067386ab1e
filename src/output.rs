//! How the read commands (`status`, `check`, `plan`, `replay`) print: a table on a terminal,
//! stable text lines otherwise (scripts and tests read them), or one JSON document.

use std::io::IsTerminal;

/// The output format of a read command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns with borders (the default when stdout is a terminal).
    Table,
    /// Plain text lines (the default when stdout is not a terminal).
    Plain,
    /// One JSON document on stdout.
    Json,
}

/// `--format` and its `--json` shorthand, for the read commands.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct FormatArgs {
    /// Output format; default: table on a terminal, plain text lines otherwise.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// Print one JSON document on stdout (the same as --format json).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

impl FormatArgs {
    /// The format asked for, else table when stdout is a terminal and plain text otherwise.
    pub fn resolve(&self) -> Format {
        if self.json {
            return Format::Json;
        }
        self.format.unwrap_or_else(|| {
            if std::io::stdout().is_terminal() {
                Format::Table
            } else {
                Format::Plain
            }
        })
    }
}

/// A table with `header`, light borders and no colour (so it reads the same with `NO_COLOR`).
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(header.iter().copied());
    table
}

/// Right-aligns the columns at `indexes` (figures).
pub fn align_right(table: &mut comfy_table::Table, indexes: &[usize]) {
    for i in indexes {
        if let Some(column) = table.column_mut(*i) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
}

/// Writes `value` as one pretty-printed JSON document and a newline.
pub fn write_json(out: &mut impl std::io::Write, value: &serde_json::Value) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Whether colour is allowed on `stream`: it is a terminal and `NO_COLOR` is unset or empty.
pub fn colour(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The CLI's log lines (`bootstrap`, `serve`): readable lines on stderr, so stdout carries only
/// what a command prints (`eval "$(deskbridge bootstrap)"`), filtered as the functions' are
/// (`RUST_LOG`, default `info`), coloured only on a terminal without `NO_COLOR`.
pub fn init_logs() {
    // A second call keeps the first subscriber.
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The filter alone decides the level: a `fmt()` subscriber would also stop at `info`.
    let _ = tracing_subscriber::registry()
        .with(deskbridge_shared::telemetry::env_filter())
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_writer(std::io::stderr)
                .with_ansi(colour(&std::io::stderr())),
        )
        .try_init();
}

/// Progress of a long command on stderr: a spinner with a count and a message on a terminal,
/// nothing otherwise (so logs and pipes only get the result).
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    /// A spinner counting `unit`s (e.g. `messages moved`), shown only when stderr is a terminal.
    pub fn spinner(unit: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        let template = format!("{{spinner}} {{pos}} {unit} {{msg}} ({{elapsed}})");
        if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress(Some(bar))
    }

    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    pub fn set_position(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(n);
        }
    }

    pub fn set_message(&self, message: impl Into<String>) {
        if let Some(bar) = &self.0 {
            bar.set_message(message.into());
        }
    }

    /// Removes the spinner, leaving the terminal as it was.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
