//! Parse, set up logging, build the single-threaded runtime, map errors to exit codes.
//! Exit 0: done or shut down by a signal. Exit 2: bad usage or bad configuration.

use jailbird::config::{self, Command, KeySource};
use jailbird::{cli, device, shutdown, supervisor};
use std::process::ExitCode;

/// See the `dlmalloc` feature in Cargo.toml for why the allocator is replaced.
#[cfg(feature = "dlmalloc")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> ExitCode {
    no_core_dumps();
    let env = |k: &str| std::env::var(k).ok();
    let log_filter = env("JAILBIRD_LOG")
        .or_else(|| env("RUST_LOG"))
        .unwrap_or_else(|| "info".into());
    jailbird::logging::init(&log_filter, env("JOURNAL_STREAM").is_some());

    let command = cli::parse(std::env::args_os().skip(1))
        .map_err(config::ConfigError)
        .and_then(|a| config::build(a, &env));
    let (code, e) = match command.map(execute) {
        Ok(Ok(())) => return ExitCode::SUCCESS,
        Ok(Err(Failed::Config(e))) | Err(config::ConfigError(e)) => (2, e),
        Ok(Err(Failed::Runtime(e))) => (1, e),
    };
    eprintln!("jailbird: {e}");
    ExitCode::from(code)
}

/// How a command failed: its configuration (usage, an unreadable identity, a
/// busy -L port: exit 2, retrying cannot help) or the system (exit 1).
enum Failed {
    Config(String),
    Runtime(String),
}

fn execute(command: Command) -> Result<(), Failed> {
    let key = |state: &std::path::Path, source: &KeySource| {
        device::DeviceKey::load(state, source)
            .map(|d| d.key)
            .map_err(Failed::Config)
    };
    match command {
        Command::Help => println!("{}", cli::USAGE),
        Command::Version => print!("{}", config::defaults::build_info()),
        Command::Key {
            state_path,
            key: source,
        } => println!("{}", device::key_line(&key(&state_path, &source)?)),
        Command::Authorize {
            state_path,
            key: source,
            permit,
            comment,
        } => {
            println!(
                "{}",
                device::authorize_line(&key(&state_path, &source)?, &permit, comment.as_deref())
            )
        }
        Command::Run(cfg) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failed::Runtime(format!("cannot start the runtime: {e}")))?;
            return rt.block_on(async {
                let stop = shutdown::install()
                    .map_err(|e| Failed::Runtime(format!("cannot install signal handlers: {e}")))?;
                supervisor::run(*cfg, stop).await.map_err(Failed::Config)
            });
        }
    }
    Ok(())
}

/// No core dump may carry the device key: the process is not dumpable (which
/// also keeps other users' ptrace and /proc/PID/mem out) and its core limit is 0.
fn no_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: two syscalls with constant arguments and a valid pointer to a
    // local; a failure only leaves the system's defaults in place.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
    }
}
