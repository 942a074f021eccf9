//! Log lines on stderr: `[LEVEL] message` on a terminal or a file; under
//! systemd (`JOURNAL_STREAM` set) sd-daemon priority prefixes instead (`<4>`
//! for a warning), so `journalctl -p warning -u jailbird` selects by level.

use std::io::Write as _;

/// Installs the logger; `filter` is `JAILBIRD_LOG`/`RUST_LOG` syntax.
pub fn init(filter: &str, journal: bool) {
    let mut b = env_logger::Builder::new();
    b.parse_filters(filter).format_target(false);
    if journal {
        b.format(|f, r| writeln!(f, "<{}>{}", sd_priority(r.level()), r.args()));
    }
    b.init();
}

/// syslog priority of a level, as sd-daemon(3) prefixes expect.
pub fn sd_priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}
