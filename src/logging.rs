//! Logging: the `log` facade written by env_logger (`RUST_LOG`, default
//! `info`), set up once by the binary.
//!
//! The policy: a line at ERROR means the operator has something to fix, and
//! it is written once per failure (the one line per 5xx of [`crate::error`]).
//! Malformed requests are the client's fault and anyone can send them, so
//! they never reach ERROR: actix-http reports each request its parser
//! refuses (a `400` or `431` it answers itself) as `ERROR … stream error:
//! request parse error: …`; such lines are written at DEBUG instead.

use log::{Level, Log, Metadata, Record};

/// Installs the logger. Call once, first thing in `main`.
pub fn init() {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max_level = inner.filter();
    if log::set_boxed_logger(Box::new(ClientFaultsAtDebug { inner })).is_ok() {
        log::set_max_level(max_level);
    }
}

/// Where actix-http reports connection-level failures.
const DISPATCHER: &str = "actix_http::h1::dispatcher";

/// How the dispatcher's reports of client faults begin: a request it could
/// not parse, or a connection that broke under it.
const CLIENT_FAULTS: [&str; 2] = [
    "stream error: request parse error",
    "stream error: I/O error",
];

/// A logger that writes client faults reported by actix-http at DEBUG, and
/// everything else as it comes.
pub struct ClientFaultsAtDebug<L> {
    /// The logger that writes.
    pub inner: L,
}

impl<L: Log> Log for ClientFaultsAtDebug<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !is_client_fault(record) {
            self.inner.log(record);
            return;
        }
        let demoted = Record::builder()
            .level(Level::Debug)
            .target(record.target())
            .args(*record.args())
            .module_path(record.module_path())
            .file(record.file())
            .line(record.line())
            .build();
        if self.inner.enabled(demoted.metadata()) {
            self.inner.log(&demoted);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Whether `record` is actix-http reporting a client's fault above DEBUG.
fn is_client_fault(record: &Record<'_>) -> bool {
    if record.level() > Level::Info || !record.target().starts_with(DISPATCHER) {
        return false;
    }
    let message = record.args().to_string();
    CLIENT_FAULTS
        .iter()
        .any(|prefix| message.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Collects (level, message) of every record it is given.
    #[derive(Default)]
    struct Collect(Mutex<Vec<(Level, String)>>);

    impl Log for Collect {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &Record<'_>) {
            self.0
                .lock()
                .expect("not poisoned")
                .push((record.level(), record.args().to_string()));
        }
        fn flush(&self) {}
    }

    fn logged(target: &str, level: Level, message: &str) -> Vec<(Level, String)> {
        let logger = ClientFaultsAtDebug {
            inner: Collect::default(),
        };
        logger.log(
            &Record::builder()
                .level(level)
                .target(target)
                .args(format_args!("{message}"))
                .build(),
        );
        logger.inner.0.into_inner().expect("not poisoned")
    }

    #[test]
    fn a_request_actix_could_not_parse_is_logged_at_debug() {
        let lines = logged(
            DISPATCHER,
            Level::Error,
            "stream error: request parse error: invalid Header provided",
        );

        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].0, Level::Debug);
        assert!(lines[0].1.contains("invalid Header provided"));
    }

    #[test]
    fn other_errors_keep_their_level() {
        for (target, message) in [
            (DISPATCHER, "stream error: internal error"),
            (DISPATCHER, "Internal server error: unexpected eof"),
            ("clickback::error", "stream error: request parse error"),
        ] {
            let lines = logged(target, Level::Error, message);

            assert_eq!(lines, [(Level::Error, message.to_owned())], "{target}");
        }
    }
}
