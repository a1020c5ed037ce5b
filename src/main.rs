//! The `clickback` server binary: `--help` / `--version`, configuration from
//! the environment, then run.
//!
//! A failure to start prints one line to stderr, `clickback: <what is wrong,
//! with its causes>; <how to fix it>`, and exits 2 when a variable or an
//! argument cannot be used, 1 when starting or serving fails.

use std::error::Error;
use std::process::ExitCode;

use clickback::config::{self, Settings};
use clickback::startup::Application;

/// mimalloc instead of glibc malloc: with glibc, allocation takes ~20 % of clickback's CPU
/// under load (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status when a variable or an argument cannot be used.
const USAGE: u8 = 2;

/// What the command line asks for.
enum Command {
    Run,
    Help,
    Version,
}

/// The command, or why the arguments make no sense.
fn command(args: &[String]) -> Result<Command, String> {
    let known = |arg: &str| matches!(arg, "--help" | "-h" | "--version" | "-V");
    match args {
        [] => Ok(Command::Run),
        [one] if one == "--help" || one == "-h" => Ok(Command::Help),
        [one] if one == "--version" || one == "-V" => Ok(Command::Version),
        _ => Err(match args.iter().find(|arg| !known(arg)) {
            Some(arg) => format!("unexpected argument {arg:?}"),
            None => format!("{} arguments where one at most makes sense", args.len()),
        }),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    match command(&args) {
        Ok(Command::Run) => {}
        Ok(Command::Help) => {
            print!("{}", config::help_text());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("clickback {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!(
                "clickback: {problem}; clickback takes only --help or --version, \
                 and is configured by environment variables (see clickback --help)"
            );
            return ExitCode::from(USAGE);
        }
    }

    clickback::logging::init();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => return fail(&e, &e.fix, USAGE),
    };
    actix_web::rt::System::new().block_on(async move {
        let app = match Application::build(settings).await {
            Ok(app) => app,
            Err(e) => return fail(&e, &e.fix(), e.exit_code()),
        };
        log::info!("clickback listening on port {}", app.port());
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&Stopped(e), "the log above shows what happened before", 1),
        }
    })
}

/// Serving ended with an error rather than a shutdown signal.
#[derive(Debug, thiserror::Error)]
#[error("the HTTP server stopped")]
struct Stopped(#[source] std::io::Error);

/// Prints `error`, its chain of causes and `fix` as one line and returns `code`.
fn fail(error: &dyn Error, fix: &str, code: u8) -> ExitCode {
    let mut line = clickback::error::error_chain(error);
    line.push_str("; ");
    line.push_str(fix);
    eprintln!("clickback: {}", line.replace(['\n', '\r'], " "));
    ExitCode::from(code)
}
