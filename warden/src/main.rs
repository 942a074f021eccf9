//! warden: parse, run, map the error to an exit status (2 usage/validation,
//! 1 runtime). `authorized-keys` always exits 0: sshd reads "no line" as no.
use clap::Parser;
use std::io::Write;

fn main() {
    let hot_path = std::env::args().any(|a| a == "authorized-keys");
    let cli = match warden::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(
                e.kind(),
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                std::process::exit(0);
            }
            // One line: clap's first, without its usage block.
            let msg = e.to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or("bad usage")
                .trim_start_matches("error: ");
            eprintln!("warden: {first} (warden --help)");
            std::process::exit(if hot_path { 0 } else { 2 });
        }
    };
    match warden::run(&cli) {
        Ok(out) => {
            let mut so = std::io::stdout().lock();
            if so
                .write_all(out.as_bytes())
                .and_then(|_| so.flush())
                .is_err()
            {
                std::process::exit(if hot_path { 0 } else { 1 });
            }
        }
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("warden: {line}");
            }
            std::process::exit(if hot_path { 0 } else { e.exit_code() });
        }
    }
}
