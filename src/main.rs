//! The `clickback` server binary: `--help` / `--version`, configuration from
//! the environment, then run; `--healthcheck` asks a running one for
//! `/healthz` (container images have no curl).
//!
//! A failure to start prints one line to stderr, `clickback: <what is wrong,
//! with its causes>; <how to fix it>`, and exits 2 when a variable or an
//! argument cannot be used, 1 when starting or serving fails.

use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

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
    Healthcheck,
}

/// The command, or why the arguments make no sense.
fn command(args: &[String]) -> Result<Command, String> {
    let known = |arg: &str| matches!(arg, "--help" | "-h" | "--version" | "-V" | "--healthcheck");
    match args {
        [] => Ok(Command::Run),
        [one] if one == "--help" || one == "-h" => Ok(Command::Help),
        [one] if one == "--version" || one == "-V" => Ok(Command::Version),
        [one] if one == "--healthcheck" => Ok(Command::Healthcheck),
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
        Ok(Command::Healthcheck) => return healthcheck(),
        Err(problem) => {
            eprintln!(
                "clickback: {problem}; clickback takes only --help, --version or --healthcheck, \
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

/// How long the health check waits to connect and for the answer.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// `clickback --healthcheck`: 0 when the clickback listening on
/// `CLICKBACK_LISTEN` answers `GET /healthz` with 200, else 1 and one line
/// on stderr (Docker reads 1 as unhealthy and reserves 2).
fn healthcheck() -> ExitCode {
    let listen = match Settings::from_env() {
        Ok(settings) => settings.listen,
        Err(e) => return fail(&e, &e.fix, 1),
    };
    match probe(&listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!(
                "clickback: /healthz on CLICKBACK_LISTEN={listen:?} {problem}; is clickback running with this environment?"
            );
            ExitCode::from(1)
        }
    }
}

/// Asks `listen` (a wildcard address means this machine's loopback) for
/// `/healthz`; the error says what went wrong.
fn probe(listen: &str) -> Result<(), String> {
    let bound = listen
        .to_socket_addrs()
        .map_err(|e| format!("is not an address ({e})"))?
        .next()
        .ok_or("names no address")?;
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let address = SocketAddr::new(ip, bound.port());
    let mut stream = TcpStream::connect_timeout(&address, HEALTHCHECK_TIMEOUT)
        .map_err(|e| format!("cannot be reached at {address} ({e})"))?;
    let unanswered = |e: std::io::Error| format!("got no answer from {address} ({e})");
    stream
        .set_read_timeout(Some(HEALTHCHECK_TIMEOUT))
        .map_err(unanswered)?;
    stream
        .set_write_timeout(Some(HEALTHCHECK_TIMEOUT))
        .map_err(unanswered)?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(unanswered)?;
    let mut status_line = String::new();
    BufReader::new(stream.take(256))
        .read_line(&mut status_line)
        .map_err(unanswered)?;
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ => Err(format!(
            "answered {:?} at {address}, not 200",
            status_line.trim_end()
        )),
    }
}
