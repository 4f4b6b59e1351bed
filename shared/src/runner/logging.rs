//! Log set-up: JSON lines for CloudWatch in Lambda, readable lines on stderr locally.

use tracing_subscriber::EnvFilter;

pub(crate) enum Mode {
    Lambda,
    Local,
}

/// The level comes from `LOG_LEVEL` (as the template sets it) or `RUST_LOG`, default `info`.
fn filter() -> EnvFilter {
    let directive = std::env::var("LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .map(|level| level.to_lowercase())
        .unwrap_or_else(|_| "info".to_owned());
    EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"))
}

pub(crate) fn init(mode: Mode) {
    let builder = tracing_subscriber::fmt().with_env_filter(filter());
    let _ = match mode {
        // Lambda captures stdout; CloudWatch Logs Insights parses the JSON fields.
        Mode::Lambda => builder.json().with_current_span(true).with_span_list(false).try_init(),
        // stdout is reserved for the command's result.
        Mode::Local => builder
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}
