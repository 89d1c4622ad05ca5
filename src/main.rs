//! The `tillsyn` command: sets up the process (the allocator, the panic
//! hook, logging), parses arguments and runs the command through
//! [`tillsyn::command_line`].

use std::process::ExitCode;

use clap::Parser;
use tillsyn::cli;
use tillsyn::command_line::{self, Args, Command};

fn main() -> ExitCode {
    limit_malloc_arenas();
    // A panic's message can hold what was being read (a parser's panic
    // carries the bytes it choked on: a DN, an address): only where it
    // happened is told. The scan it happened in fails by kind `panic`.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map_or_else(|| "an unknown place".to_owned(), ToString::to_string);
        eprintln!(
            "tillsyn: a panic at {location} (its message is not shown: it may hold what was read)"
        );
    }));
    // A document extraction worker (see tillsyn_extract): no logging, no
    // runtime, one document in, its text out.
    let arguments: Vec<String> = std::env::args().collect();
    if arguments.get(1).map(String::as_str) == Some(tillsyn_extract::isolated_argument()) {
        let status = tillsyn_extract::worker_main(&arguments[2..]);
        return ExitCode::from(u8::try_from(status).unwrap_or(1));
    }
    let args = Args::parse();
    tillsyn_connectors::tls::install_default_provider();
    // The service logs what it does; one-shot commands only what went wrong.
    let default_level = match args.command {
        Command::Run { .. } => "info",
        _ => "warn",
    };
    let filter = cli::log_filter(std::env::var("TILLSYN_LOG").ok().as_deref(), default_level);
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // Under systemd, journald stamps each line itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        logs.without_time().init();
    } else {
        logs.init();
    }
    match command_line::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("tillsyn: {error:#}");
            let code = error
                .downcast_ref::<cli::CliError>()
                .map_or(cli::EXIT_FAILED, cli::CliError::exit_code);
            ExitCode::from(code)
        }
    }
}

/// glibc's allocator gives threads that allocate at the same time arenas of
/// their own, up to eight per core, and room one arena frees the others do
/// not reuse: the runtime's workers and its blocking threads (where the
/// store works) each grow one. Two arenas took a header scan of a million
/// messages from 95–97 MB peak RSS to 92–93 MB at the same speed (one: 88
/// MB, 10 % slower; BENCHMARKS.md), and keep a long-running daemon's heap
/// from spreading. `MALLOC_ARENA_MAX` in the environment still decides
/// where it is set.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    const ARENAS: libc::c_int = 2;
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a parameter of glibc's allocator, from
        // plain integers, here before any other thread is started; a value
        // it refuses is reported by its return value and changes nothing.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENAS) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
