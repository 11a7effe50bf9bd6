//! What the embedded scheduler and executor say (Ballista logs through `log`): lines on
//! standard error at the level `SVODKA_CLUSTER_LOG` names (error, warn, info, debug,
//! trace; default warn).

use std::io::Write;

/// The variable that sets the level.
pub const ENV: &str = "SVODKA_CLUSTER_LOG";

struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(
                std::io::stderr().lock(),
                "{} {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }
    fn flush(&self) {}
}

/// Starts logging for a cluster process; an unknown level is an error naming it.
pub fn init() -> Result<(), crate::ClusterError> {
    let level = match std::env::var(ENV) {
        Ok(text) => {
            text.parse::<log::LevelFilter>()
                .map_err(|_| crate::ClusterError::Environment {
                    name: ENV,
                    given: text,
                    expected: "error, warn, info, debug or trace",
                })?
        }
        Err(_) => log::LevelFilter::Warn,
    };
    // A second call (tests, embedding) keeps the first logger.
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
    Ok(())
}
